// The Notifications tab of a repository: its webhook notifications for the mirror sync events
// (list, create, send a test, reset failures, delete). Only repository admins may use them.

import { del, enc, get, post, repoPath } from "./api.js";
import { emptyRow, h, replace, showError, toast } from "./dom.js";
import { busy, clearErrors, field, input, select, showApiError } from "./forms.js";

// The events of services/notification_events.py (EVENTS), in plain words.
const EVENTS = [
  ["repo_mirror_sync_started", "Mirror sync started"],
  ["repo_mirror_sync_success", "Mirror sync succeeded"],
  ["repo_mirror_sync_failed", "Mirror sync failed"],
];
// services/notifications.py MAX_FAILURES: after this many failed deliveries a notification is
// disabled until its failures are reset.
const MAX_FAILURES = 3;
const COLUMNS = ["Title", "Event", "Webhook URL", "Failures", "Actions"];
const FORBIDDEN = "Only administrators of this repository can manage its notifications.";

function eventName(event) {
  const found = EVENTS.find(([key]) => key === event);
  return found ? found[1] : event;
}

// Validation texts of POST .../notification/ (docs/api.md) → the form field they are about.
function fieldFor(message) {
  if (/url|webhook|host/i.test(message)) return "url";
  if (/title/i.test(message)) return "title";
  if (/event/i.test(message)) return "event";
  return null;
}

function failuresCell(count) {
  const n = Number(count || 0);
  if (n >= MAX_FAILURES) {
    return [String(n), " ", h("span", { class: "badge badge-bad", title: "Reset failures to re-enable it" }, "disabled")];
  }
  return [String(n), n > 0 ? h("span", { class: "small muted" }, ` (disabled after ${MAX_FAILURES})`) : null];
}

/** Run ``work`` with ``button`` disabled; errors become a toast. */
async function withButton(button, work) {
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

export async function renderNotifications(panel, repo, page) {
  const base = `${repoPath(repo.namespace, repo.name)}/notification`;
  const tbody = h("tbody");
  const event = select("event", EVENTS);
  const url = input("url", { inputmode: "url", required: true, placeholder: "https://hooks.example.com/…", spellcheck: "false" });
  const title = input("title", { placeholder: "e.g. mirror failures to chat", maxLength: 255 });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-label": "Create notification" },
    field("Event", event, { help: "When the webhook is called." }),
    field("Webhook URL", url, { help: "An http:// or https:// URL; Moorage POSTs the event as JSON to it." }),
    field("Title", title, { help: "Optional: a name to recognise it by." }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create notification")),
  );
  const create = h("details", { class: "card create" }, h("summary", {}, "Create notification"), form);
  panel.append(
    h(
      "p",
      { class: "intro" },
      `Webhooks called when a mirror sync of ${repo.namespace}/${repo.name} starts, succeeds or fails. `,
      `A notification is disabled after ${MAX_FAILURES} failed deliveries until its failures are reset.`,
    ),
    create,
    h(
      "div",
      { class: "card table-card" },
      h(
        "table",
        { class: "table", "aria-label": "Notifications" },
        h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
  );

  function label(notification) {
    return notification.title || eventName(notification.event);
  }

  async function sendTest(notification, button) {
    await withButton(button, async () => {
      await post(`${base}/${enc(notification.uuid)}/test`);
      toast(`Test notification queued for ${label(notification)}`);
    });
  }

  async function resetFailures(notification, button) {
    await withButton(button, async () => {
      await post(`${base}/${enc(notification.uuid)}`);
      toast(`Failures reset for ${label(notification)}`);
      await load();
    });
  }

  async function remove(notification, button) {
    if (!window.confirm(`Delete the notification “${label(notification)}”?`)) return;
    await withButton(button, async () => {
      await del(`${base}/${enc(notification.uuid)}`);
      toast(`Deleted ${label(notification)}`);
      await load();
    });
  }

  function row(notification) {
    const failures = Number(notification.number_of_failures || 0);
    const test = h("button", { type: "button", class: "btn btn-small" }, "Send test");
    const reset = failures > 0 ? h("button", { type: "button", class: "btn btn-small" }, "Reset failures") : null;
    const drop = h("button", { type: "button", class: "btn btn-small btn-danger" }, "Delete");
    test.addEventListener("click", () => sendTest(notification, test));
    if (reset) reset.addEventListener("click", () => resetFailures(notification, reset));
    drop.addEventListener("click", () => remove(notification, drop));
    const hook = (notification.config && notification.config.url) || "";
    return h(
      "tr",
      { dataset: { uuid: notification.uuid } },
      h("th", { scope: "row" }, notification.title || h("span", { class: "muted" }, "–")),
      h("td", {}, eventName(notification.event)),
      h("td", { class: "clip" }, hook ? h("code", { title: hook }, hook) : h("span", { class: "muted" }, "–")),
      h("td", { class: "num" }, failuresCell(failures)),
      h("td", { class: "row-actions" }, test, reset ? [" ", reset] : null, " ", drop),
    );
  }

  async function load() {
    try {
      const answer = await get(`${base}/`);
      if (!page.alive()) return;
      const notifications = answer.notifications || [];
      replace(tbody, notifications.length ? notifications.map(row) : emptyRow(COLUMNS.length, "No notifications yet."));
    } catch (error) {
      if (!page.alive()) return;
      if (error.status === 403) create.hidden = true;
      replace(tbody, emptyRow(COLUMNS.length, error.status === 403 ? FORBIDDEN : error.message));
    }
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    clearErrors(form);
    await busy(form, async () => {
      const body = { event: event.value, method: "webhook", config: { url: url.value.trim() }, eventConfig: {} };
      if (title.value.trim()) body.title = title.value.trim();
      try {
        const created = await post(`${base}/`, body);
        toast(`Created ${label(created)}`);
        form.reset();
        await load();
      } catch (error) {
        if (error.status === 403) showApiError(form, { detail: FORBIDDEN });
        else showApiError(form, error, fieldFor);
      }
    });
  });
  await load();
}

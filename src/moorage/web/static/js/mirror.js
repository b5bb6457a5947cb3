// The Mirroring tab: configuration form, live status (polled every 1.5 s while a sync runs),
// Sync now / Cancel, and the run history with its chart.

import { ApiError, get, post, put, repoPath } from "./api.js";
import { h, replace, showError, toast } from "./dom.js";
import { busy, showApiError } from "./forms.js";
import { loadRobots, mirrorForm } from "./mirror-form.js";
import { ACTIVE, chartCard, historyTable, statusCard } from "./mirror-status.js";
import { fieldForMessage } from "./mirror-text.js";

const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 15000;
const RUNS_LIMIT = 50;

async function getOrNull(path) {
  try {
    return await get(path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** Keep keyboard focus on the same button when a card is re-rendered. */
function swapKeepingFocus(slot, element) {
  const focused = slot.contains(document.activeElement) ? document.activeElement.textContent : null;
  replace(slot, element);
  if (focused) {
    const again = [...slot.querySelectorAll("button")].find((b) => b.textContent === focused);
    if (again) again.focus();
  }
}

export async function renderMirror(panel, repo, page, onState) {
  const base = `${repoPath(repo.namespace, repo.name)}/mirror`;
  const [mirror, robots, caps] = await Promise.all([
    getOrNull(base),
    loadRobots(repo.namespace),
    get("/registry/capabilities").catch(() => null),
  ]);
  if (!page.alive()) return;

  const stateNote = h("div", { class: "state-note" });
  const statusSlot = h("div", { class: "status-slot" });
  const chartSlot = h("div", { class: "chart-slot" });
  const formSlot = h("section", { class: "card form-card" });
  const historySlot = h("div", { class: "history-slot" });
  panel.append(stateNote, h("div", { class: "mirror-top" }, statusSlot, chartSlot), formSlot, historySlot);

  let current = mirror;
  let lastRunId; // undefined: the first refresh always loads the run history
  let timer = null;
  page.onLeave(() => clearTimeout(timer));

  function showStateNote() {
    if (!current || repo.state === "MIRROR") {
      replace(stateNote);
      return;
    }
    const button = h("button", { type: "button", class: "btn btn-small" }, "Switch to MIRROR");
    button.addEventListener("click", async () => {
      try {
        await put(`${repoPath(repo.namespace, repo.name)}/changestate`, { state: "MIRROR" });
        onState("MIRROR");
        showStateNote();
        toast("The repository now mirrors.");
      } catch (error) {
        showError(error);
      }
    });
    replace(
      stateNote,
      h("div", { class: "alert alert-warn" }, `This repository is in the ${repo.state} state, so the mirror does not run. `, button),
    );
  }

  async function loadRuns() {
    const answer = await get(`${base}/runs?limit=${RUNS_LIMIT}`);
    if (!page.alive()) return;
    replace(chartSlot, chartCard(answer.runs));
    replace(historySlot, historyTable(answer.runs));
  }

  async function action(button, path, done) {
    button.disabled = true;
    try {
      await post(`${base}/${path}`);
      toast(done);
    } catch (error) {
      toast(error.status === 404 ? "Not possible in the mirror's current state." : error.message, "bad");
    }
    await refresh();
  }

  const handlers = {
    onSyncNow: (button) => action(button, "sync-now", "Sync queued."),
    onCancel: (button) => action(button, "sync-cancel", "Cancelling the sync…"),
  };

  function showStatus() {
    if (!current) {
      replace(statusSlot);
      return;
    }
    swapKeepingFocus(statusSlot, statusCard(current, handlers));
  }

  async function refresh() {
    clearTimeout(timer);
    const before = current && current.sync_status;
    try {
      const fresh = await getOrNull(base);
      if (!page.alive()) return;
      current = fresh;
      showStatus();
      const runId = current && current.last_sync ? current.last_sync.id : null;
      if (current && (runId !== lastRunId || ACTIVE.has(current.sync_status))) {
        lastRunId = runId;
        await loadRuns();
      }
      if (current && before && ACTIVE.has(before) && !ACTIVE.has(current.sync_status)) {
        toast(`Sync finished: ${current.sync_status.replace("_", " ")}`, current.sync_status === "SUCCESS" ? "ok" : "bad");
      }
    } catch (error) {
      if (!page.alive()) return;
      showError(error);
    }
    if (!page.alive() || !current) return;
    timer = setTimeout(refresh, ACTIVE.has(current.sync_status) ? FAST_POLL_MS : SLOW_POLL_MS);
  }

  function showForm() {
    const form = mirrorForm({
      repo,
      mirror: current,
      robots,
      caps,
      onSubmit: (method, body, el) =>
        busy(el, async () => {
          try {
            if (method === "POST") await post(base, body);
            else await put(base, body);
          } catch (error) {
            showApiError(el, error, (message) => fieldForMessage(message, body));
            return;
          }
          toast(method === "POST" ? "Mirror created. The repository now mirrors." : "Mirror configuration saved.");
          if (method === "POST") onState("MIRROR");
          await refresh();
          showForm();
          showStateNote();
        }),
    });
    replace(formSlot, form);
    if (!current) {
      formSlot.prepend(
        h(
          "p",
          { class: "intro" },
          "Mirroring keeps this repository a copy of a repository in another registry: tags that match are copied on a schedule, and nobody but the mirror's robot can push here.",
        ),
      );
    }
  }

  showStateNote();
  showForm();
  showStatus();
  if (current) await refresh();
}

// Usage logs: of a repository (tab), of an organization, or of a user's namespace (merged
// from its repositories, since /api/v1 has no user-wide log route).

import { enc, get, isOrganization, repoPath } from "./api.js";
import { emptyRow, h, parseDate, replace, showError, timeEl } from "./dom.js";
import { field, select } from "./forms.js";
import { namespacePicker } from "./namespace.js";

const HIDDEN_KEYS = new Set(["namespace", "repo", "user-agent"]);
const MAX_MERGED_REPOS = 25;

function details(metadata) {
  const parts = Object.entries(metadata || {})
    .filter(([key]) => !HIDDEN_KEYS.has(key))
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
  return parts.join(" · ");
}

function logRow(entry, showRepo) {
  const meta = entry.metadata || {};
  return h(
    "tr",
    {},
    h("td", {}, timeEl(entry.datetime)),
    h("td", {}, h("code", {}, entry.kind)),
    showRepo ? h("td", {}, meta.repo ? `${meta.namespace}/${meta.repo}` : h("span", { class: "muted" }, "–")) : null,
    h("td", {}, entry.performer ? `${entry.performer.name}${entry.performer.is_robot ? " (robot)" : ""}` : h("span", { class: "muted" }, "system")),
    h("td", { class: "clip" }, details(meta)),
    h("td", { class: "muted" }, entry.ip || ""),
  );
}

function dayString(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getUTCMonth() + 1)}/${pad(date.getUTCDate())}/${date.getUTCFullYear()}`;
}

function rangeQuery(days) {
  const start = new Date(Date.now() - (Number(days) - 1) * 86400000);
  return `starttime=${enc(dayString(start))}&endtime=${enc(dayString(new Date()))}`;
}

function table(showRepo) {
  const columns = ["When", "Event", ...(showRepo ? ["Repository"] : []), "By", "Details", "IP"];
  const tbody = h("tbody");
  const el = h(
    "table",
    { class: "table logs" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  return { el, tbody, columns: columns.length };
}

/** One paginated log route (repository or organization) in ``panel``. */
export async function renderLogList(panel, path, page, { showRepo = false } = {}) {
  const days = select("days", [["7", "Last 7 days", true], ["30", "Last 30 days"], ["90", "Last 90 days"]]);
  const { el, tbody, columns } = table(showRepo);
  const more = h("button", { type: "button", class: "btn", hidden: true }, "Load more");
  const status = h("p", { class: "muted small", "aria-live": "polite" });
  panel.append(h("div", { class: "toolbar" }, field("Period", days)), h("div", { class: "card table-card" }, el, more), status);
  let rows = [];
  let next = null;
  async function load(reset) {
    const query = `${rangeQuery(days.value)}${!reset && next ? `&next_page=${enc(next)}` : ""}`;
    try {
      const answer = await get(`${path}?${query}`);
      if (!page.alive()) return;
      rows = reset ? answer.logs : [...rows, ...answer.logs];
      next = answer.next_page || null;
      replace(tbody, rows.length ? rows.map((r) => logRow(r, showRepo)) : emptyRow(columns, "No events in this period."));
      status.textContent = `${rows.length} events`;
      more.hidden = !next;
    } catch (error) {
      if (!page.alive()) return;
      replace(tbody, emptyRow(columns, error.status === 403 ? "Only administrators can see these logs." : error.message));
    }
  }
  days.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  await load(true);
}

async function mergedUserLogs(panel, namespace, page) {
  const { el, tbody, columns } = table(true);
  const note = h("p", { class: "muted small" }, `Events of the repositories in ${namespace} (last 7 days).`);
  panel.append(note, h("div", { class: "card table-card" }, el));
  const repos = (await get(`/repository?namespace=${enc(namespace)}`)).repositories.slice(0, MAX_MERGED_REPOS);
  const pages = await Promise.all(
    repos.map((r) => get(`${repoPath(r.namespace, r.name)}/logs`).catch(() => ({ logs: [] }))),
  );
  if (!page.alive()) return;
  const rows = pages
    .flatMap((p) => p.logs)
    .sort((a, b) => (parseDate(b.datetime) || 0) - (parseDate(a.datetime) || 0));
  replace(tbody, rows.length ? rows.map((r) => logRow(r, true)) : emptyRow(columns, "No events in the last 7 days."));
}

export async function renderNamespaceLogs(main, params, _query, page) {
  const namespace = params.namespace;
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Usage logs"), namespacePicker(namespace, (ns) => `/ui/logs/${enc(ns)}`)),
  );
  const panel = h("section", { "aria-label": `Usage logs of ${namespace}` });
  main.append(panel);
  try {
    if (isOrganization(namespace)) {
      await renderLogList(panel, `/organization/${enc(namespace)}/logs`, page, { showRepo: true });
    } else {
      await mergedUserLogs(panel, namespace, page);
    }
  } catch (error) {
    showError(error);
  }
}

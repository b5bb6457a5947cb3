// Superuser: mirror health of the whole registry (workers, counts, issues, every mirror).

import { enc, get, session } from "./api.js";
import { emptyRow, fmtRelative, h, replace, syncBadge, timeEl } from "./dom.js";

const REFRESH_MS = 10000;

function stat(label, value, kind = "") {
  return h("div", { class: `stat ${kind}` }, h("div", { class: "stat-value" }, String(value)), h("div", { class: "stat-label" }, label));
}

function summary(report) {
  const repos = report.repositories || {};
  const workers = report.workers || {};
  return h(
    "section",
    { class: "card", "aria-labelledby": "health-title" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: "health-title" }, "Mirror health"),
      h("span", { class: `badge badge-${report.healthy ? "ok" : "bad"}` }, report.healthy ? "healthy" : "unhealthy"),
    ),
    h(
      "div",
      { class: "stats" },
      stat("mirrors", repos.total ?? 0),
      stat("syncing", repos.syncing ?? 0, "info"),
      stat("succeeded", repos.completed ?? 0, "ok"),
      stat("failed", repos.failed ?? 0, repos.failed ? "bad" : ""),
      stat("never run", repos.never_run ?? 0),
      stat("tags pending", report.tags_pending ?? 0),
      stat(`workers${workers.configured ? ` of ${workers.configured}` : ""}`, workers.active ?? 0, workers.status === "healthy" ? "ok" : "warn"),
    ),
    h("p", { class: "muted small" }, "Checked ", fmtRelative(report.last_check), "."),
  );
}

function issues(report) {
  const list = report.issues || [];
  return h(
    "section",
    { class: "card", "aria-labelledby": "issues-title" },
    h("h2", { id: "issues-title" }, "Issues"),
    list.length
      ? h("ul", { class: "issues" }, list.map((i) => h("li", { class: `issue issue-${i.severity}` }, h("span", { class: "badge badge-neutral" }, i.severity), " ", i.message)))
      : h("p", { class: "muted" }, "No issues."),
  );
}

function details(report) {
  const rows = (report.repositories && report.repositories.details) || [];
  return h(
    "section",
    { class: "card table-card", "aria-labelledby": "mirrors-title" },
    h("h2", { id: "mirrors-title" }, "Mirrors"),
    h(
      "table",
      { class: "table" },
      h("thead", {}, h("tr", {}, ["Repository", "Status", "Scheduled", "Last sync", "Retries left"].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((r) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { href: `/ui/repository/${enc(r.namespace)}/${enc(r.repository)}/mirror` }, `${r.namespace}/${r.repository}`)),
                h("td", {}, syncBadge(r.sync_status)),
                h("td", {}, r.is_enabled ? "enabled" : "disabled"),
                h("td", {}, timeEl(r.last_sync)),
                h("td", { class: "num" }, String(r.retries_remaining)),
              ),
            )
          : emptyRow(5, "No mirrors configured."),
      ),
    ),
  );
}

export async function renderSuperuser(main, _params, _query, page) {
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Registry health")));
  if (!session.user || !session.user.super_user) {
    main.append(h("div", { class: "alert alert-warn" }, "Only superusers can see this page."));
    return;
  }
  const slot = h("div", { class: "health" });
  main.append(slot);
  let timer = null;
  page.onLeave(() => clearTimeout(timer));
  async function load() {
    const [overall, detailed] = await Promise.all([
      get("/superuser/mirror/health", { accept: [503] }),
      get("/repository/mirror/health?detailed=true&limit=1000", { accept: [503] }),
    ]);
    if (!page.alive()) return;
    replace(slot, h("div", { class: "grid-2" }, summary(overall), issues(detailed)), details(detailed));
    timer = setTimeout(() => load().catch(() => {}), REFRESH_MS);
  }
  await load();
}

// The mirror's live status (state, progress of a running sync, last sync, last error) and
// its run history (table). Pure rendering: mirror.js fetches and polls.

import { runChart } from "./chart.js";
import {
  emptyRow,
  fmtBytes,
  fmtDuration,
  fmtRelative,
  h,
  parseDate,
  runBadge,
  syncBadge,
  timeEl,
} from "./dom.js";
import { explainError, STATUS_TEXT, TRIGGER_TEXT } from "./mirror-text.js";

export const ACTIVE = new Set(["SYNCING", "SYNC_NOW"]);

function duration(run) {
  const start = parseDate(run.started);
  const end = parseDate(run.finished) || (run.status === "running" ? new Date() : null);
  return start && end ? (end - start) / 1000 : null;
}

function tagCounts(run) {
  const parts = [`${run.tags_copied} copied`, `${run.tags_skipped} unchanged`];
  if (run.tags_failed) parts.push(`${run.tags_failed} failed`);
  if (run.tags_deleted) parts.push(`${run.tags_deleted} deleted`);
  return parts.join(", ");
}

function progress(current) {
  const done = current.tags_copied + current.tags_skipped + current.tags_failed;
  const total = current.tags_total || 0;
  const bar = h("progress", {
    class: "sync-progress",
    max: total || 1,
    value: total ? done : 0,
    "aria-label": "Sync progress",
  });
  if (!total) bar.removeAttribute("value"); // indeterminate while the tag list is fetched
  return h(
    "div",
    { class: "progress-box" },
    h(
      "div",
      { class: "progress-line" },
      h("strong", { class: "progress-tags" }, total ? `${done} of ${total} tags` : "Listing tags…"),
      h("span", { class: "progress-bytes" }, `${fmtBytes(current.bytes)} copied`),
    ),
    bar,
    h(
      "p",
      { class: "muted small" },
      `${tagCounts(current)} · started ${fmtRelative(current.started)} (${TRIGGER_TEXT[current.trigger] || current.trigger})`,
    ),
  );
}

function lastSync(run) {
  if (!run) return h("p", { class: "muted" }, "No sync has finished yet.");
  return h(
    "dl",
    { class: "facts" },
    h("dt", {}, "Last sync"),
    h("dd", {}, runBadge(run.status), " ", timeEl(run.finished), ` (${fmtRelative(run.finished)})`),
    h("dt", {}, "Took"),
    h("dd", {}, fmtDuration(duration(run))),
    h("dt", {}, "Tags"),
    h("dd", {}, `${run.tags_total} matched: ${tagCounts(run)}`),
    h("dt", {}, "Data"),
    h("dd", {}, fmtBytes(run.bytes)),
  );
}

function lastError(error) {
  if (!error) return null;
  return h(
    "div",
    { class: "alert alert-bad last-error", role: "note" },
    h("strong", {}, "Last error: "),
    explainError(error.kind, error.message),
    h(
      "details",
      {},
      h("summary", {}, "Technical details"),
      h("p", {}, h("code", {}, error.kind || "error"), " ", timeEl(error.time)),
      h("pre", { class: "raw" }, error.message || ""),
    ),
  );
}

/** The status card with Sync now / Cancel buttons. */
export function statusCard(mirror, { onSyncNow, onCancel }) {
  const active = ACTIVE.has(mirror.sync_status);
  const syncNow = h(
    "button",
    { type: "button", class: "btn btn-primary", disabled: mirror.sync_status === "SYNCING" },
    "Sync now",
  );
  const cancel = h("button", { type: "button", class: "btn btn-danger", disabled: !active }, "Cancel sync");
  syncNow.addEventListener("click", () => onSyncNow(syncNow));
  cancel.addEventListener("click", () => onCancel(cancel));
  const next =
    mirror.is_enabled && !active
      ? h("p", { class: "muted small" }, "Next scheduled sync: ", timeEl(mirror.sync_start_date), ` (${fmtRelative(mirror.sync_start_date)})`)
      : h("p", { class: "muted small" }, mirror.is_enabled ? "" : "Scheduled syncs are disabled.");
  return h(
    "section",
    { class: "card status-card", "aria-labelledby": "mirror-status-title" },
    h("div", { class: "card-head" }, h("h2", { id: "mirror-status-title" }, "Status"), h("span", { class: "sync-status", dataset: { status: mirror.sync_status } }, syncBadge(mirror.sync_status))),
    h("p", { class: "status-text" }, STATUS_TEXT[mirror.sync_status] || ""),
    mirror.current_sync ? progress(mirror.current_sync) : null,
    next,
    h("p", { class: "muted small" }, `Source: ${mirror.external_reference} · retries left: ${mirror.sync_retries_remaining}`),
    h("div", { class: "actions" }, syncNow, cancel),
    lastSync(mirror.last_sync),
    lastError(mirror.last_error),
  );
}

function runRow(run) {
  const error = run.error_kind
    ? h("span", { title: run.error_message || "" }, explainError(run.error_kind, run.error_message))
    : h("span", { class: "muted" }, "–");
  return h(
    "tr",
    {},
    h("td", {}, timeEl(run.started)),
    h("td", {}, TRIGGER_TEXT[run.trigger] || run.trigger),
    h("td", {}, runBadge(run.status)),
    h("td", { class: "num" }, fmtDuration(duration(run))),
    h("td", { class: "num" }, `${run.tags_copied} / ${run.tags_skipped} / ${run.tags_failed}`),
    h("td", { class: "num" }, String(run.tags_deleted)),
    h("td", { class: "num" }, fmtBytes(run.bytes)),
    h("td", { class: "error-cell" }, error),
  );
}

/** Chart card content for the runs (or a hint while there are none). */
export function chartCard(runs) {
  const chart = runChart(runs);
  return h(
    "section",
    { class: "card chart-card", "aria-labelledby": "mirror-chart-title" },
    h("h2", { id: "mirror-chart-title" }, "Duration and data per sync"),
    chart || h("p", { class: "muted" }, "The chart appears after the first finished sync."),
  );
}

export function historyTable(runs) {
  const headers = ["Started", "Trigger", "Result", "Duration", "Copied / unchanged / failed", "Deleted", "Data", "Error"];
  return h(
    "section",
    { class: "card table-card", "aria-labelledby": "mirror-history-title" },
    h("h2", { id: "mirror-history-title" }, "Sync history"),
    h(
      "table",
      { class: "table runs" },
      h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, runs.length ? runs.map(runRow) : emptyRow(headers.length, "No syncs yet.")),
    ),
  );
}

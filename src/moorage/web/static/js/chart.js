// A small inline-SVG chart of mirror runs over time: bars for durations, a line for bytes.
// No library: a handful of <rect>, <polyline> and <text> elements, styled by app.css.

import { fmtBytes, fmtDate, fmtDuration, h, parseDate, s } from "./dom.js";

const W = 720;
const H = 200;
const M = { top: 16, right: 64, bottom: 34, left: 56 };

function seconds(run) {
  const start = parseDate(run.started);
  const end = parseDate(run.finished);
  return start && end ? Math.max(0, (end - start) / 1000) : null;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** The chart for ``runs`` (newest first, as the API lists them); null when nothing finished. */
export function runChart(runs) {
  const done = runs.filter((r) => r.finished && r.status !== "running").slice(0, 40).reverse();
  if (!done.length) return null;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const durations = done.map((r) => seconds(r) || 0);
  const bytes = done.map((r) => r.bytes || 0);
  const maxDuration = niceMax(Math.max(...durations));
  const maxBytes = niceMax(Math.max(...bytes));
  const slot = plotW / done.length;
  const barW = Math.max(2, Math.min(28, slot * 0.6));
  const x = (i) => M.left + slot * i + slot / 2;
  const yDuration = (v) => M.top + plotH - (v / maxDuration) * plotH;
  const yBytes = (v) => M.top + plotH - (v / maxBytes) * plotH;

  const grid = [0, 0.5, 1].map((f) => {
    const y = M.top + plotH - f * plotH;
    return [
      s("line", { x1: M.left, x2: M.left + plotW, y1: y, y2: y, class: "grid" }),
      s("text", { x: M.left - 6, y: y + 4, class: "axis axis-left" }, fmtDuration(maxDuration * f)),
      s("text", { x: M.left + plotW + 6, y: y + 4, class: "axis axis-right" }, fmtBytes(maxBytes * f)),
    ];
  });
  const bars = done.map((run, i) => {
    const top = yDuration(durations[i]);
    return s(
      "rect",
      {
        x: x(i) - barW / 2,
        y: Math.min(top, M.top + plotH - 2),
        width: barW,
        height: Math.max(2, M.top + plotH - top),
        class: `bar bar-${run.status}`,
      },
      s("title", {}, `${fmtDate(run.started)}: ${run.status}, ${fmtDuration(durations[i])}, ${fmtBytes(bytes[i])}`),
    );
  });
  const points = done.map((_, i) => `${x(i).toFixed(1)},${yBytes(bytes[i]).toFixed(1)}`).join(" ");
  const dots = done.map((_, i) => s("circle", { cx: x(i), cy: yBytes(bytes[i]), r: 3, class: "dot" }));
  const labels = [
    s("text", { x: x(0), y: H - 12, class: "axis axis-x" }, fmtDate(done[0].started)),
    done.length > 1
      ? s("text", { x: x(done.length - 1), y: H - 12, class: "axis axis-x axis-x-end" }, fmtDate(done.at(-1).started))
      : null,
  ];
  const total = durations.reduce((a, b) => a + b, 0);
  const summary =
    `${done.length} finished runs; longest ${fmtDuration(Math.max(...durations))}, ` +
    `average ${fmtDuration(total / done.length)}; most data in one run ${fmtBytes(Math.max(...bytes))}.`;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `Sync history chart. ${summary}` },
    grid,
    bars,
    done.length > 1 ? s("polyline", { points, class: "line" }) : null,
    dots,
    labels,
  );
  const legend = h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    h("span", { class: "key key-bar" }, "duration (left axis)"),
    h("span", { class: "key key-line" }, "bytes copied (right axis)"),
    h("span", { class: "key key-failed" }, "failed"),
    h("span", { class: "key key-cancelled" }, "cancelled"),
  );
  return h("figure", { class: "chart-wrap" }, svg, legend, h("figcaption", { class: "muted small" }, summary));
}

// Tiny DOM helpers and formatters. Text is always set with textContent (never innerHTML), so
// names and messages from the API cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key in el && typeof value !== "string" && !(el instanceof SVGElement)) {
      el[key] = value;
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h("a", {href: "/ui/", class: "x"}, "text", otherNode) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements (namespaced). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// --- formatters ---------------------------------------------------------------------------

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

export function parseDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const DATE_FMT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const REL_FMT = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function fmtDate(value) {
  const date = parseDate(value);
  return date ? DATE_FMT.format(date) : "–";
}

export function fmtRelative(value, now = Date.now()) {
  const date = parseDate(value);
  if (!date) return "never";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [30, "day"],
    [12, "month"],
  ];
  let amount = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(amount) < size) return REL_FMT.format(amount, unit);
    amount = Math.round(amount / size);
  }
  return REL_FMT.format(amount, "year");
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 10 && !Number.isInteger(seconds)) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A time element showing a date, with the relative time as a tooltip. */
export function timeEl(value) {
  const date = parseDate(value);
  if (!date) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: date.toISOString(), title: fmtRelative(date) }, fmtDate(date));
}

export function shortDigest(digest) {
  if (!digest) return "";
  const [algo, hex] = digest.split(":");
  return hex ? `${algo}:${hex.slice(0, 12)}` : digest;
}

// --- small widgets ------------------------------------------------------------------------

const STATE_CLASS = { NORMAL: "ok", READ_ONLY: "warn", MIRROR: "info" };

export function stateBadge(state) {
  const label = state === "READ_ONLY" ? "READ ONLY" : state;
  return h("span", { class: `badge badge-${STATE_CLASS[state] || "neutral"}` }, label || "?");
}

const SYNC_CLASS = {
  SUCCESS: "ok",
  FAIL: "bad",
  SYNCING: "info",
  SYNC_NOW: "info",
  CANCEL: "warn",
  NEVER_RUN: "neutral",
};

export function syncBadge(status) {
  const label = (status || "").replace("_", " ");
  return h("span", { class: `badge badge-${SYNC_CLASS[status] || "neutral"}` }, label || "?");
}

const RUN_CLASS = { succeeded: "ok", failed: "bad", cancelled: "warn", running: "info" };

export function runBadge(status) {
  return h("span", { class: `badge badge-${RUN_CLASS[status] || "neutral"}` }, status || "?");
}

/** Copy ``text`` to the clipboard; falls back to selecting ``input`` for Ctrl+C. */
export async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to selecting the text
  }
  if (input) {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
  return false;
}

/** A read-only text box with a Copy button (pull commands, robot tokens). */
export function copyBox(text, label) {
  const input = h("input", {
    type: "text",
    readOnly: true,
    value: text,
    class: "copy-input",
    "aria-label": label,
    spellcheck: "false",
  });
  const button = h("button", { type: "button", class: "btn btn-small" }, "Copy");
  button.addEventListener("click", async () => {
    const ok = await copyText(text, input);
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  });
  return h("div", { class: "copy-box" }, input, button);
}

let toastTimer = null;

/** A short message in the corner (role=status, announced by screen readers). */
export function toast(message, kind = "ok") {
  const el = document.getElementById("toast");
  if (!el) return;
  el.className = `toast toast-${kind} visible`;
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.className = "toast";
  }, 4000);
}

export function emptyRow(columns, message) {
  return h("tr", {}, h("td", { colSpan: columns, class: "empty" }, message));
}

/** Tell the user about a failure; programming errors also go to the console (tests see them). */
export function showError(error) {
  toast(error && error.message ? error.message : String(error), "bad");
  if (!error || error.name !== "ApiError") console.error(error);
}

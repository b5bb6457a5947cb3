// The mirror configuration form: Quay's fields, POST when there is no mirror, else a PUT of
// only what changed (so the audit log records real changes and the stored password is kept).

import { get, put, robotsBase, enc } from "./api.js";
import { h, toast } from "./dom.js";
import { clearErrors, field, group, input, select, showFieldError } from "./forms.js";

const UNITS = [
  [86400, "days"],
  [3600, "hours"],
  [60, "minutes"],
  [1, "seconds"],
];
const PROXY_KEYS = ["http_proxy", "https_proxy", "no_proxy"];

const pad = (n) => String(n).padStart(2, "0");

/** "2025-01-15T12:00:00Z" → "2025-01-15T13:00:00" in the browser's time zone. */
export function toLocalInput(iso) {
  const d = iso ? new Date(iso) : new Date(Math.ceil(Date.now() / 60000) * 60000);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A datetime-local value → the API's "YYYY-MM-DDTHH:MM:SSZ" (UTC); "" when empty/invalid. */
export function toApiDate(local) {
  const d = local ? new Date(local) : null;
  if (!d || Number.isNaN(d.getTime())) return local || "";
  return `${d.toISOString().slice(0, 19)}Z`;
}

function splitInterval(seconds) {
  for (const [size] of UNITS) {
    if (seconds && seconds % size === 0) return [seconds / size, size];
  }
  return [seconds || 1, 1];
}

function zoneName() {
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function robotPicker(namespace, repoName, robots, current) {
  const options = [["", "Choose a robot account…", !current]];
  const names = robots.map((r) => r.name);
  if (current && !names.includes(current)) names.unshift(current);
  for (const name of names) options.push([name, name, name === current]);
  const picker = select("robot_username", options, { required: true });
  const shortName = input("new_robot", { placeholder: "e.g. mirror_bot", "aria-label": "New robot short name" });
  const create = h("button", { type: "button", class: "btn btn-small" }, "Create robot");
  const inline = h("div", { class: "inline-create" }, h("span", { class: "prefix" }, `${namespace}+`), shortName, create);
  async function createRobot() {
    const short = shortName.value.trim();
    const wrapper = picker.closest(".field");
    wrapper.querySelectorAll(".field-error").forEach((e) => e.remove());
    if (!short) {
      shortName.focus();
      return;
    }
    try {
      const robot = await put(`${robotsBase(namespace)}/${enc(short)}`, {
        description: `Mirror robot for ${namespace}/${repoName}`,
      });
      picker.append(h("option", { value: robot.name }, robot.name));
      picker.value = robot.name;
      shortName.value = "";
      toast(`Created robot ${robot.name}`);
      picker.focus();
    } catch (error) {
      showFieldError(picker.form, "robot_username", error.detail || error.message);
    }
  }
  create.addEventListener("click", createRobot);
  shortName.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      createRobot();
    }
  });
  return { picker, inline };
}

/**
 * Build the form. ``mirror`` is the GET body or null; ``onSubmit(method, body)`` sends it and
 * returns a promise. ``caps`` is /registry/capabilities.
 */
export function mirrorForm({ repo, mirror, robots, caps, onSubmit }) {
  const cfg = (mirror && mirror.external_registry_config) || {};
  const proxy = cfg.proxy || {};
  const [amount, unit] = splitInterval(mirror ? mirror.sync_interval : 86400);
  const f = {
    is_enabled: input("is_enabled", { type: "checkbox", checked: mirror ? mirror.is_enabled : true }),
    external_reference: input("external_reference", {
      value: mirror ? mirror.external_reference : "",
      placeholder: "quay.io/organization/repository",
      required: true,
      spellcheck: "false",
    }),
    tags: input("root_rule", {
      value: mirror ? mirror.root_rule.rule_value.join(", ") : "",
      placeholder: "latest, v1.*",
      required: true,
    }),
    start: input("sync_start_date", { type: "datetime-local", step: "1", value: toLocalInput(mirror && mirror.sync_start_date), required: true }),
    amount: input("sync_interval", { type: "number", min: "1", step: "1", value: String(amount), required: true, class: "short" }),
    unit: select("sync_interval_unit", UNITS.map(([size, label]) => [String(size), label, size === unit]), { "aria-label": "Interval unit" }),
    username: input("external_registry_username", { value: (mirror && mirror.external_registry_username) || "", autocomplete: "off" }),
    password: input("external_registry_password", {
      type: "password",
      autocomplete: "new-password",
      placeholder: mirror && mirror.external_registry_username ? "stored – leave empty to keep" : "",
    }),
    verify_tls: input("verify_tls", { type: "checkbox", checked: cfg.verify_tls !== false }),
  };
  for (const key of PROXY_KEYS) {
    f[key] = input(key, { value: proxy[key] || "", placeholder: key === "no_proxy" ? "internal.example, .corp" : "http://proxy.example:3128", spellcheck: "false" });
  }
  const archAllowed = (caps && caps.mirror_architectures) || ["amd64", "arm64", "ppc64le", "s390x"];
  const archSelected = new Set((mirror && mirror.architecture_filter) || []);
  const sparse = !caps || !caps.sparse_manifests || caps.sparse_manifests.supported !== false;
  const arches = archAllowed.map((a) => input("architecture_filter", { type: "checkbox", value: a, checked: archSelected.has(a), disabled: !sparse }));
  const robot = robotPicker(repo.namespace, repo.name, robots, mirror && mirror.robot_username);

  const intervalField = field("Sync interval", f.amount, { name: "sync_interval", help: "How often the mirror syncs, counted from the start date." });
  const intervalRow = h("div", { class: "input-row" });
  f.amount.replaceWith(intervalRow);
  intervalRow.append(f.amount, f.unit);
  const robotField = field("Robot account", robot.picker, { help: "Owns the mirrored content; the only account that may write to this repository while it mirrors." });
  robotField.append(robot.inline);

  const form = h(
    "form",
    { class: "mirror-form", novalidate: true, "aria-label": "Mirror configuration" },
    h("div", { class: "form-error alert alert-bad", role: "alert", hidden: true }),
    h("h2", {}, mirror ? "Mirror configuration" : "Set up mirroring"),
    h("fieldset", { class: "section" }, h("legend", {}, "Source"),
      field("Registry location", f.external_reference, { help: "host[:port]/path of the repository to copy from, without https://" }),
      field("Tags", f.tags, { name: "root_rule", help: "Comma-separated tag names or patterns (*, ?, [abc]); any match is mirrored." }),
      group("Architectures", arches.map((a) => h("label", { class: "check" }, a, ` ${a.value}`)), {
        name: "architecture_filter",
        help: sparse ? "Platforms copied from multi-architecture images; none selected copies all." : "Needs FEATURE_SPARSE_INDEX: every platform is copied.",
      }),
    ),
    h("fieldset", { class: "section" }, h("legend", {}, "Schedule"),
      field("Enabled (scheduled syncs run)", f.is_enabled, { help: "Sync now works even when disabled." }),
      field("Start date", f.start, { name: "sync_start_date", help: `Your local time (${zoneName()}); the schedule is anchored here.` }),
      intervalField,
    ),
    h("fieldset", { class: "section" }, h("legend", {}, "Credentials"),
      robotField,
      field("Upstream username", f.username, { name: "external_registry_username", help: "Leave empty for anonymous pulls. Clearing it removes the stored credentials." }),
      field("Upstream password", f.password, { name: "external_registry_password", help: "Write-only: the stored password is never shown. Leave empty to keep it." }),
    ),
    h("fieldset", { class: "section" }, h("legend", {}, "Connection"),
      field("Verify TLS", f.verify_tls, { help: "Check the source registry's certificate (recommended)." }),
      field("HTTP proxy", f.http_proxy),
      field("HTTPS proxy", f.https_proxy),
      field("No proxy", f.no_proxy, { help: "Hosts reached directly, comma-separated." }),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, mirror ? "Save changes" : "Create mirror")),
  );

  function values() {
    return {
      is_enabled: f.is_enabled.checked,
      external_reference: f.external_reference.value.trim(),
      rule_value: f.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      start_local: f.start.value,
      sync_interval: Math.round(Number(f.amount.value || 0) * Number(f.unit.value)),
      robot_username: robot.picker.value,
      username: f.username.value.trim(),
      password: f.password.value,
      verify_tls: f.verify_tls.checked,
      proxy: Object.fromEntries(PROXY_KEYS.map((k) => [k, f[k].value.trim() || null])),
      architectures: arches.filter((a) => a.checked).map((a) => a.value),
    };
  }

  function createBody(v) {
    const body = {
      is_enabled: v.is_enabled,
      external_reference: v.external_reference,
      sync_start_date: toApiDate(v.start_local),
      sync_interval: v.sync_interval,
      robot_username: v.robot_username,
      root_rule: { rule_kind: "tag_glob_csv", rule_value: v.rule_value },
      external_registry_config: { verify_tls: v.verify_tls, proxy: v.proxy },
      architecture_filter: v.architectures,
    };
    if (v.username) body.external_registry_username = v.username;
    if (v.username && v.password) body.external_registry_password = v.password;
    return body;
  }

  function changes(v) {
    const body = {};
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    if (v.is_enabled !== mirror.is_enabled) body.is_enabled = v.is_enabled;
    if (v.external_reference !== mirror.external_reference) body.external_reference = v.external_reference;
    // Compared in the API's form: Chromium drops ":00" seconds from datetime-local values.
    const start = toApiDate(v.start_local);
    if (start !== mirror.sync_start_date) body.sync_start_date = start;
    if (v.sync_interval !== mirror.sync_interval) body.sync_interval = v.sync_interval;
    if (v.robot_username !== mirror.robot_username) body.robot_username = v.robot_username;
    if (!same(v.rule_value, mirror.root_rule.rule_value)) body.root_rule = { rule_kind: "tag_glob_csv", rule_value: v.rule_value };
    if (!same([...v.architectures].sort(), [...(mirror.architecture_filter || [])].sort())) body.architecture_filter = v.architectures;
    const config = {};
    if (v.verify_tls !== (cfg.verify_tls !== false)) config.verify_tls = v.verify_tls;
    const proxyChanges = Object.fromEntries(PROXY_KEYS.filter((k) => v.proxy[k] !== (proxy[k] || null)).map((k) => [k, v.proxy[k]]));
    if (Object.keys(proxyChanges).length) config.proxy = proxyChanges;
    if (Object.keys(config).length) body.external_registry_config = config;
    const storedUser = mirror.external_registry_username || "";
    if (v.password) {
      body.external_registry_username = v.username || null;
      body.external_registry_password = v.password;
    } else if (v.username !== storedUser) {
      // The username alone keeps the stored password; clearing it removes both.
      body.external_registry_username = v.username || null;
      if (!v.username) body.external_registry_password = null;
    }
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = values();
    const body = mirror ? changes(v) : createBody(v);
    if (mirror && !Object.keys(body).length) {
      toast("Nothing changed.");
      return;
    }
    await onSubmit(mirror ? "PUT" : "POST", body, form);
  });
  return form;
}

/** Robots of the namespace for the picker; [] when the caller may not list them. */
export async function loadRobots(namespace) {
  try {
    const answer = await get(robotsBase(namespace));
    return answer.robots || [];
  } catch {
    return [];
  }
}

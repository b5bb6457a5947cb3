// Form building blocks: every control has a <label>, help text and errors are tied to it with
// aria-describedby, and API errors are shown next to the field they are about.

import { h } from "./dom.js";

let uid = 0;

export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled field: field("Name", input, {help, name}). The input gets an id if it has none;
 * ``name`` (default: the input's name) is what API errors are matched against.
 */
export function field(label, input, { help = "", name = "", wide = false } = {}) {
  if (!input.id) input.id = nextId(input.name || "field");
  const described = [];
  const helpEl = help ? h("p", { class: "help", id: `${input.id}-help` }, help) : null;
  if (helpEl) described.push(helpEl.id);
  if (described.length) input.setAttribute("aria-describedby", described.join(" "));
  const isCheck = input.type === "checkbox";
  const labelEl = h("label", { for: input.id }, label);
  return h(
    "div",
    {
      class: `field${isCheck ? " field-check" : ""}${wide ? " field-wide" : ""}`,
      dataset: { field: name || input.name || "" },
    },
    isCheck ? [input, labelEl] : [labelEl, input],
    helpEl,
  );
}

/** A group of related controls (checkbox lists): a fieldset with a legend. */
export function group(legend, controls, { name = "", help = "" } = {}) {
  return h(
    "fieldset",
    { class: "field field-group", dataset: { field: name } },
    h("legend", {}, legend),
    h("div", { class: "group-controls" }, controls),
    help ? h("p", { class: "help" }, help) : null,
  );
}

export function input(name, attrs = {}) {
  return h("input", { name, type: "text", autocomplete: "off", ...attrs });
}

export function select(name, options, attrs = {}) {
  return h(
    "select",
    { name, ...attrs },
    options.map(([value, label, selected]) => h("option", { value, selected: Boolean(selected) }, label)),
  );
}

/** Remove every error shown in ``form`` (field errors and the form-level message). */
export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    const ids = (el.getAttribute("aria-describedby") || "")
      .split(" ")
      .filter((id) => id && !id.endsWith("-error"));
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  }
  const formError = form.querySelector(".form-error");
  if (formError) {
    formError.hidden = true;
    formError.textContent = "";
  }
}

/** Show ``message`` under the field named ``name``; false when the form has no such field. */
export function showFieldError(form, name, message) {
  const wrapper = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  if (!wrapper) return false;
  const control = wrapper.querySelector("input, select, textarea");
  const id = `${control ? control.id : nextId("err")}-error`;
  const error = h("p", { class: "field-error", id, role: "alert" }, message);
  wrapper.append(error);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const ids = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    control.setAttribute("aria-describedby", [...ids, id].join(" "));
  }
  return true;
}

/** The form-level message box (created on first use, at the top of the form). */
export function showFormError(form, message) {
  let box = form.querySelector(".form-error");
  if (!box) {
    box = h("div", { class: "form-error alert alert-bad", role: "alert" });
    form.prepend(box);
  }
  box.textContent = message;
  box.hidden = false;
}

/**
 * Show an API error: next to the field ``fieldFor(message)`` names when the form has it,
 * otherwise at the top of the form. Focuses the field so keyboard users land on it.
 */
export function showApiError(form, error, fieldFor = () => null) {
  clearErrors(form);
  const full = error && error.detail ? error.detail : String(error && error.message);
  // Schema errors carry jsonschema's explanation after the first line: show the sentence.
  const message = full.split("\n")[0].trim() || full;
  const name = fieldFor(full);
  if (name && showFieldError(form, name, message)) {
    const control = form.querySelector(`[data-field="${CSS.escape(name)}"] input, [data-field="${CSS.escape(name)}"] select`);
    if (control) control.focus();
    return name;
  }
  showFormError(form, message);
  return null;
}

/** Disable a form's submit buttons while ``work`` runs. */
export async function busy(form, work) {
  const buttons = [...form.querySelectorAll("button")];
  const before = buttons.map((b) => b.disabled);
  buttons.forEach((b) => {
    b.disabled = true;
  });
  form.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    buttons.forEach((b, i) => {
      b.disabled = before[i];
    });
    form.removeAttribute("aria-busy");
  }
}

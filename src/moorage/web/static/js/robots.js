// Robot accounts of a namespace: list, create (the token is shown once), regenerate, delete.

import { del, enc, get, post, put, robotsBase } from "./api.js";
import { copyBox, emptyRow, h, replace, showError, timeEl, toast } from "./dom.js";
import { busy, clearErrors, field, input, showApiError } from "./forms.js";
import { namespacePicker } from "./namespace.js";

function shortName(full) {
  return full.split("+").slice(1).join("+");
}

function tokenNotice(robot) {
  return h(
    "div",
    { class: "alert alert-ok token-notice", role: "status" },
    h("p", {}, h("strong", {}, robot.name), " — copy its token now; it is not shown again."),
    copyBox(robot.token, `Token of ${robot.name}`),
    h("p", { class: "small" }, "Log in with: ", h("code", {}, `podman login -u '${robot.name}' -p <token> ${location.host}`)),
  );
}

export async function renderRobots(main, params, _query, page) {
  const namespace = params.namespace;
  const base = robotsBase(namespace);
  const notice = h("div", { class: "notice-slot" });
  const tbody = h("tbody");
  const name = input("robot_shortname", { required: true, placeholder: "e.g. deployer", pattern: "[a-z][a-z0-9_]{1,254}" });
  const description = input("description", { placeholder: "what it is for" });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-label": "Create robot account" },
    field("Short name", name, { help: `The robot is called ${namespace}+<short name>: lowercase letters, digits and _.` }),
    field("Description", description),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create robot")),
  );
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Robot accounts"), namespacePicker(namespace, (ns) => `/ui/robots/${enc(ns)}`)),
    notice,
    h("details", { class: "card create" }, h("summary", {}, "Create robot account"), form),
    h(
      "div",
      { class: "card table-card" },
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, ["Robot", "Description", "Created", "Last used", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
  );

  async function regenerate(robot) {
    if (!window.confirm(`Create a new token for ${robot.name}? The old token stops working.`)) return;
    try {
      const answer = await post(`${base}/${enc(shortName(robot.name))}/regenerate`);
      replace(notice, tokenNotice(answer));
    } catch (error) {
      showError(error);
    }
  }

  async function remove(robot) {
    if (!window.confirm(`Delete ${robot.name}?`)) return;
    try {
      await del(`${base}/${enc(shortName(robot.name))}`);
      toast(`Deleted ${robot.name}`);
      await load();
    } catch (error) {
      showError(error);
    }
  }

  function row(robot) {
    const regen = h("button", { type: "button", class: "btn btn-small" }, "New token");
    const drop = h("button", { type: "button", class: "btn btn-small btn-danger" }, "Delete");
    regen.addEventListener("click", () => regenerate(robot));
    drop.addEventListener("click", () => remove(robot));
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, h("code", {}, robot.name)),
      h("td", {}, robot.description || h("span", { class: "muted" }, "–")),
      h("td", {}, timeEl(robot.created)),
      h("td", {}, timeEl(robot.last_accessed)),
      h("td", { class: "row-actions" }, regen, " ", drop),
    );
  }

  async function load() {
    try {
      const answer = await get(base);
      if (!page.alive()) return;
      const robots = answer.robots || [];
      replace(tbody, robots.length ? robots.map(row) : emptyRow(5, "No robot accounts yet."));
    } catch (error) {
      if (!page.alive()) return;
      replace(tbody, emptyRow(5, error.status === 403 ? "Only administrators of this namespace can manage its robots." : error.message));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    await busy(form, async () => {
      try {
        const robot = await put(`${base}/${enc(name.value.trim())}`, { description: description.value.trim() || null });
        replace(notice, tokenNotice(robot));
        form.reset();
        await load();
      } catch (error) {
        showApiError(form, error, (message) => (/description/i.test(message) ? "description" : "robot_shortname"));
      }
    });
  });
  await load();
}

// Repositories: search by namespace and name, and create a repository.

import { enc, get, namespaces, post } from "./api.js";
import { emptyRow, h, replace, showError, stateBadge, toast } from "./dom.js";
import { busy, clearErrors, field, input, select, showApiError } from "./forms.js";
import { navigate } from "./router.js";

function repoLink(repo, tab = "") {
  const base = `/ui/repository/${enc(repo.namespace)}/${enc(repo.name)}`;
  return tab ? `${base}/${tab}` : base;
}

function row(repo) {
  return h(
    "tr",
    {},
    h("td", {}, h("a", { href: repoLink(repo) }, h("span", { class: "muted" }, `${repo.namespace} / `), repo.name)),
    h("td", {}, stateBadge(repo.state), repo.state === "MIRROR" ? [" ", h("a", { href: repoLink(repo, "mirror"), class: "small" }, "mirror status")] : null),
    h("td", {}, repo.is_public ? "public" : "private"),
    h("td", { class: "muted clip" }, repo.description || ""),
  );
}

function createForm(defaultNamespace, onCreated) {
  const owned = namespaces();
  const ns = select(
    "namespace",
    owned.map((n) => [n.name, n.kind === "org" ? `${n.name} (organization)` : n.name, n.name === defaultNamespace]),
  );
  const name = input("repository", { required: true, placeholder: "e.g. argocd", pattern: "[a-z0-9._/-]+" });
  const visibility = select("visibility", [
    ["private", "Private", true],
    ["public", "Public"],
  ]);
  const description = input("description", { placeholder: "optional" });
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-label": "Create repository" },
    field("Namespace", ns),
    field("Name", name, { name: "repository" }),
    field("Visibility", visibility),
    field("Description", description, { wide: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create repository")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    await busy(form, async () => {
      try {
        const created = await post("/repository", {
          namespace: ns.value,
          repository: name.value.trim(),
          visibility: visibility.value,
          description: description.value.trim() || null,
        });
        toast(`Created ${created.namespace}/${created.name}`);
        onCreated(created);
      } catch (error) {
        showApiError(form, error, (message) => {
          if (/repository|name|already exists/i.test(message)) return "repository";
          if (/namespace|unauthorized/i.test(message)) return "namespace";
          if (/description/i.test(message)) return "description";
          return null;
        });
      }
    });
  });
  return form;
}

export async function renderRepositories(main, _params, query, page) {
  const namespaceFilter = input("namespace-filter", {
    type: "search",
    list: "namespace-options",
    value: query.get("namespace") || "",
    placeholder: "all namespaces",
  });
  const nameFilter = input("name-filter", { type: "search", value: query.get("q") || "", placeholder: "filter by name" });
  const datalist = h("datalist", { id: "namespace-options" }, namespaces().map((n) => h("option", { value: n.name })));
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "btn", hidden: true }, "Load more");
  const count = h("p", { class: "muted small", "aria-live": "polite" });
  const createPanel = h(
    "details",
    { class: "card create", open: query.get("create") === "1" },
    h("summary", {}, "Create repository"),
    createForm(query.get("namespace") || namespaces()[0]?.name, (created) =>
      navigate(repoLink({ namespace: created.namespace, name: created.name })),
    ),
  );
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Repositories")),
    createPanel,
    h(
      "form",
      { class: "toolbar", role: "search", "aria-label": "Search repositories" },
      field("Namespace", namespaceFilter),
      field("Name contains", nameFilter),
      datalist,
    ),
    h("div", { class: "card table-card" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Repository"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Visibility"), h("th", { scope: "col" }, "Description"))),
      tbody,
    ), more),
    count,
  );

  let all = [];
  let nextPage = null;

  function show() {
    const needle = nameFilter.value.trim().toLowerCase();
    const shown = all.filter((r) => !needle || `${r.namespace}/${r.name}`.toLowerCase().includes(needle));
    replace(tbody, shown.length ? shown.map(row) : emptyRow(4, all.length ? "No repository matches the filter." : "No repositories yet."));
    count.textContent = `${shown.length} of ${all.length}${nextPage ? "+" : ""} repositories`;
    more.hidden = !nextPage;
  }

  async function load(reset) {
    const params = new URLSearchParams();
    const ns = namespaceFilter.value.trim();
    if (ns) params.set("namespace", ns);
    if (!reset && nextPage) params.set("next_page", nextPage);
    const answer = await get(`/repository?${params}`);
    if (!page.alive()) return;
    all = reset ? answer.repositories : [...all, ...answer.repositories];
    nextPage = answer.next_page;
    show();
  }

  function syncUrl() {
    const params = new URLSearchParams();
    if (namespaceFilter.value.trim()) params.set("namespace", namespaceFilter.value.trim());
    if (nameFilter.value.trim()) params.set("q", nameFilter.value.trim());
    history.replaceState(null, "", `/ui/repositories${params.size ? `?${params}` : ""}`);
  }

  let timer = null;
  namespaceFilter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      syncUrl();
      load(true).catch((error) => showError(error));
    }, 300);
  });
  page.onLeave(() => clearTimeout(timer));
  nameFilter.addEventListener("input", () => {
    syncUrl();
    show();
  });
  more.addEventListener("click", () => load(false).catch((error) => showError(error)));
  main.querySelector("form.toolbar").addEventListener("submit", (event) => event.preventDefault());
  await load(true);
}

// One repository: header with its state, and tabs for tags, mirroring, notifications and usage
// logs.

import { enc, get, repoPath } from "./api.js";
import {
  copyBox,
  emptyRow,
  fmtBytes,
  h,
  replace,
  shortDigest,
  showError,
  stateBadge,
  timeEl,
} from "./dom.js";
import { renderLogList } from "./logs.js";
import { renderMirror } from "./mirror.js";
import { renderNotifications } from "./notifications.js";

const TABS = [
  ["tags", "Tags"],
  ["mirror", "Mirroring"],
  ["notifications", "Notifications"],
  ["logs", "Usage logs"],
];

export function pullCommand(namespace, name, tag) {
  return `podman pull ${location.host}/${namespace}/${name}:${tag}`;
}

function header(repo) {
  const state = h("span", { class: "repo-state" }, stateBadge(repo.state));
  return h(
    "div",
    { class: "page-head" },
    h(
      "h1",
      {},
      h("a", { href: `/ui/repositories?namespace=${enc(repo.namespace)}`, class: "muted" }, repo.namespace),
      " / ",
      repo.name,
    ),
    h("div", { class: "head-meta" }, state, h("span", { class: "badge badge-neutral" }, repo.is_public ? "public" : "private")),
    repo.description ? h("p", { class: "muted" }, repo.description) : null,
  );
}

function tabs(repo, active) {
  const base = `/ui/repository/${enc(repo.namespace)}/${enc(repo.name)}`;
  return h(
    "nav",
    { class: "tabs", "aria-label": "Repository sections" },
    TABS.map(([key, label]) =>
      h("a", { href: key === "tags" ? base : `${base}/${key}`, "aria-current": key === active ? "page" : null }, label),
    ),
  );
}

function tagRow(repo, tag) {
  const arch = (tag.architectures || []).map((a) => h("span", { class: "chip" }, a));
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, tag.name, tag.is_manifest_list ? h("span", { class: "chip chip-muted", title: "image index (multi-architecture)" }, "index") : null),
    h("td", {}, h("code", { title: tag.manifest_digest }, shortDigest(tag.manifest_digest))),
    h("td", { class: "num" }, fmtBytes(tag.size)),
    h("td", {}, arch.length ? arch : h("span", { class: "muted" }, "–")),
    h("td", {}, timeEl(tag.last_modified)),
    h("td", { class: "pull" }, copyBox(pullCommand(repo.namespace, repo.name, tag.name), `Pull command for ${tag.name}`)),
  );
}

async function renderTags(panel, repo, page) {
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "btn", hidden: true }, "Load more");
  panel.append(
    h(
      "div",
      { class: "card table-card" },
      h(
        "table",
        { class: "table", "aria-label": "Tags" },
        h(
          "thead",
          {},
          h("tr", {}, ["Tag", "Digest", "Size", "Architectures", "Last modified", "Pull"].map((c) => h("th", { scope: "col" }, c))),
        ),
        tbody,
      ),
      more,
    ),
  );
  let number = 1;
  const rows = [];
  async function load() {
    const answer = await get(`${repoPath(repo.namespace, repo.name)}/tag/?onlyActiveTags=true&limit=100&page=${number}`);
    if (!page.alive()) return;
    rows.push(...answer.tags);
    number += 1;
    const empty = repo.state === "MIRROR" ? "No tags yet: the mirror has not copied any." : "No tags yet. Push an image to this repository.";
    replace(tbody, rows.length ? rows.map((t) => tagRow(repo, t)) : emptyRow(6, empty));
    more.hidden = !answer.has_additional;
  }
  more.addEventListener("click", () => load().catch((error) => showError(error)));
  await load();
}

export async function renderRepository(main, params, _query, page) {
  const { namespace, name } = params;
  const tab = TABS.some(([key]) => key === params.tab) ? params.tab : "tags";
  const repo = await get(repoPath(namespace, name));
  if (!page.alive()) return;
  document.title = `${namespace}/${name} · Moorage`;
  const panel = h("section", { class: "tab-panel", "aria-label": TABS.find(([k]) => k === tab)[1] });
  main.append(header(repo), tabs(repo, tab), panel);
  const onState = (state) => {
    repo.state = state;
    replace(main.querySelector(".repo-state"), stateBadge(state));
  };
  if (tab === "mirror") await renderMirror(panel, repo, page, onState);
  else if (tab === "notifications") await renderNotifications(panel, repo, page);
  else if (tab === "logs") await renderLogList(panel, `${repoPath(namespace, name)}/logs`, page);
  else await renderTags(panel, repo, page);
}

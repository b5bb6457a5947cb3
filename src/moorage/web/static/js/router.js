// Client-side routing with the History API. Every /ui/... path is served index.html by the
// server, so reloading or sharing a link shows the same page.

const routes = [];
let leaving = [];
let generation = 0;
let guard = null;

/**
 * route("/ui/repository/:namespace/:name/:tab?", render): render(main, params, query, page)
 * where page.alive() tells whether the user is still on this page (async work checks it) and
 * page.onLeave(fn) registers clean-up (timers) run when the user navigates away.
 */
export function route(pattern, render, { auth = true, title = "" } = {}) {
  const keys = [];
  const source = pattern
    .split("/")
    .map((part) => {
      if (!part.startsWith(":")) return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const optional = part.endsWith("?");
      keys.push(part.slice(1, optional ? -1 : undefined));
      return optional ? "?([^/]*)" : "([^/]+)";
    })
    .join("/");
  routes.push({ regex: new RegExp(`^${source}/?$`), keys, render, auth, title });
}

/** Called before each render with the matched route; may return a path to go to instead. */
export function setGuard(fn) {
  guard = fn;
}

function match(pathname) {
  for (const entry of routes) {
    const found = entry.regex.exec(pathname);
    if (found) {
      const params = {};
      entry.keys.forEach((key, i) => {
        params[key] = found[i + 1] ? decodeURIComponent(found[i + 1]) : "";
      });
      return { entry, params };
    }
  }
  return null;
}

function errorBox(error) {
  const box = document.createElement("div");
  box.className = "alert alert-bad";
  box.setAttribute("role", "alert");
  box.textContent = error && error.message ? error.message : "Something went wrong.";
  return box;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render(true);
}

export function render(moveFocus = false) {
  const main = document.getElementById("main");
  generation += 1;
  for (const fn of leaving.splice(0)) {
    try {
      fn();
    } catch {
      // a page's clean-up must never break navigation
    }
  }
  const url = new URL(location.href);
  const found = match(url.pathname) || match("/ui/not-found");
  if (!found) return;
  if (guard) {
    const redirect = guard(found.entry, url);
    if (redirect) {
      navigate(redirect, { replace: true });
      return;
    }
  }
  main.replaceChildren();
  document.title = found.entry.title ? `${found.entry.title} · Moorage` : "Moorage";
  const mine = generation;
  const page = {
    alive: () => mine === generation,
    onLeave: (fn) => {
      if (mine === generation) leaving.push(fn);
      else fn();
    },
  };
  Promise.resolve()
    .then(() => found.entry.render(main, found.params, url.searchParams, page))
    .catch((error) => {
      if (!error || error.name !== "ApiError") console.error(error);
      if (page.alive()) main.replaceChildren(errorBox(error));
    });
  document.dispatchEvent(new CustomEvent("moorage:navigated", { detail: url.pathname }));
  if (moveFocus) main.focus({ preventScroll: true });
}

function onClick(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !(url.pathname === "/" || url.pathname.startsWith("/ui")))
    return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) {
    navigate(url.pathname + url.search + url.hash);
  }
}

export function start() {
  document.addEventListener("click", onClick);
  window.addEventListener("popstate", () => render(true));
  render(false);
}

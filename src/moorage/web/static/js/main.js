// Entry point: load the session, draw the top bar, route /ui/... paths to pages.

import { enc, loadSession, session, setUnauthorizedHandler, signOut } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { renderNamespaceLogs } from "./logs.js";
import { renderRepositories } from "./repositories.js";
import { renderRepository } from "./repository.js";
import { renderRobots } from "./robots.js";
import { navigate, render, route, setGuard, start } from "./router.js";
import { renderSignIn } from "./signin.js";
import { renderSuperuser } from "./superuser.js";

function notFound(main) {
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Page not found")),
    h("p", {}, h("a", { href: "/ui/repositories" }, "Back to the repositories")),
  );
}

route("/", renderRepositories, { title: "Repositories" });
route("/ui", renderRepositories, { title: "Repositories" });
route("/ui/repositories", renderRepositories, { title: "Repositories" });
route("/ui/signin", renderSignIn, { auth: false, title: "Sign in" });
route("/ui/repository/:namespace/:name/:tab?", renderRepository, { title: "Repository" });
route("/ui/robots/:namespace", renderRobots, { title: "Robot accounts" });
route("/ui/logs/:namespace", renderNamespaceLogs, { title: "Usage logs" });
route("/ui/superuser", renderSuperuser, { title: "Registry health" });
route("/ui/not-found", notFound, { auth: false, title: "Not found" });

setGuard((entry, url) => {
  if (entry.auth && !session.user) {
    return `/ui/signin?next=${enc(url.pathname + url.search)}`;
  }
  if (url.pathname === "/ui/signin" && session.user) return "/ui/repositories";
  return null;
});

function navLink(href, label, active) {
  return h("a", { href, "aria-current": active ? "page" : null }, label);
}

function drawHeader() {
  const nav = document.getElementById("nav");
  const account = document.getElementById("account");
  const user = session.user;
  if (!user) {
    replace(nav);
    replace(account);
    return;
  }
  const path = location.pathname;
  const me = enc(user.username);
  replace(
    nav,
    navLink("/ui/repositories", "Repositories", path === "/" || path === "/ui" || path === "/ui/" || path.startsWith("/ui/repositor")),
    navLink(`/ui/robots/${me}`, "Robot accounts", path.startsWith("/ui/robots")),
    navLink(`/ui/logs/${me}`, "Usage logs", path.startsWith("/ui/logs")),
    user.super_user ? navLink("/ui/superuser", "Registry health", path.startsWith("/ui/superuser")) : null,
  );
  const button = h("button", { type: "button", class: "btn btn-ghost" }, "Sign out");
  button.addEventListener("click", async () => {
    try {
      await signOut();
    } catch {
      // the cookie is cleared client-side state anyway
    }
    navigate("/ui/signin", { replace: true });
    toast("Signed out.");
  });
  replace(
    account,
    h("span", { class: "whoami" }, user.username, user.super_user ? h("span", { class: "badge badge-info" }, "superuser") : null),
    button,
  );
}

setUnauthorizedHandler(() => {
  if (!session.user) return;
  session.user = null;
  session.csrf = null;
  toast("Your session ended. Please sign in again.", "bad");
  render(false);
});

document.addEventListener("moorage:navigated", drawHeader);

async function boot() {
  try {
    await loadSession();
  } catch {
    session.user = null;
  }
  start();
}

boot();

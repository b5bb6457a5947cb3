// Sign-in page: POST /api/v1/signin sets the session cookie; then go where the user wanted.

import { signIn } from "./api.js";
import { h } from "./dom.js";
import { busy, clearErrors, field, input, showApiError } from "./forms.js";
import { navigate } from "./router.js";

function safeNext(query) {
  const next = query.get("next") || "/ui/";
  return next.startsWith("/ui") && !next.startsWith("/ui/signin") ? next : "/ui/";
}

export function renderSignIn(main, _params, query) {
  const username = input("username", { autocomplete: "username", required: true });
  const password = input("password", {
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    { class: "card signin", novalidate: true, "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Moorage"),
    h("div", { class: "form-error alert alert-bad", role: "alert", hidden: true }),
    field("Username", username),
    field("Password", password),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Sign in")),
    h(
      "p",
      { class: "help" },
      "Scripts and registry clients keep using access tokens or robot credentials.",
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    await busy(form, async () => {
      try {
        await signIn(username.value.trim(), password.value);
        navigate(safeNext(query), { replace: true });
      } catch (error) {
        password.value = "";
        showApiError(form, error, () => null);
        password.focus();
      }
    });
  });
  main.append(h("div", { class: "signin-wrap" }, form));
  username.focus();
}

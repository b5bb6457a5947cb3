// Switch between the namespaces the user belongs to (their own and their organizations).

import { namespaces } from "./api.js";
import { h } from "./dom.js";

/** Links to the same page for each namespace; ``hrefFor(name)`` builds each link. */
export function namespacePicker(current, hrefFor) {
  const all = namespaces();
  if (!all.some((n) => n.name === current)) all.push({ name: current, kind: "other" });
  return h(
    "nav",
    { class: "pills", "aria-label": "Namespace" },
    all.map((n) =>
      h(
        "a",
        { href: hrefFor(n.name), class: "pill", "aria-current": n.name === current ? "page" : null },
        n.name,
        n.kind === "org" ? h("span", { class: "pill-kind" }, "org") : null,
      ),
    ),
  );
}

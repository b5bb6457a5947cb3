// The one way the UI talks to Moorage: the same /api/v1 that scripts use. The session cookie
// is HttpOnly; the CSRF token (from sign-in or GET /api/v1/session) goes in X-CSRF-Token.

export class ApiError extends Error {
  constructor(status, body) {
    const detail =
      (body && typeof body === "object" && (body.detail || body.error_message || body.message)) ||
      (typeof body === "string" && body) ||
      `Request failed (HTTP ${status})`;
    super(String(detail));
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.detail = String(detail);
  }
}

/** Who is signed in: {username, super_user, csrf_token, organizations} or null. */
export const session = { user: null, csrf: null };

let onUnauthorized = () => {};

export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export function enc(value) {
  return encodeURIComponent(value);
}

/**
 * Call /api/v1. Resolves with the parsed JSON body (or null); rejects with ApiError.
 * ``accept`` lists non-2xx statuses whose body is still an answer (e.g. 503 from health).
 */
export async function api(method, path, body, { accept = [] } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch (error) {
    throw new ApiError(0, `Cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok && !accept.includes(response.status)) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body) => api("POST", path, body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

/** Load the session behind the cookie (and the user's organizations); null when signed out. */
export async function loadSession() {
  const info = await get("/session");
  if (!info || !info.authenticated) {
    session.user = null;
    session.csrf = null;
    return null;
  }
  session.csrf = info.csrf_token;
  const user = await get("/user/");
  session.user = { ...user, super_user: Boolean(user.super_user) };
  return session.user;
}

export async function signIn(username, password) {
  const answer = await post("/signin", { username, password });
  session.csrf = answer.csrf_token;
  return loadSession();
}

export async function signOut() {
  try {
    await post("/signout");
  } finally {
    session.user = null;
    session.csrf = null;
  }
}

/** Namespaces the user may act in: their own, then their organizations. */
export function namespaces() {
  const user = session.user;
  if (!user) return [];
  return [
    { name: user.username, kind: "user" },
    ...(user.organizations || []).map((org) => ({ name: org.name, kind: "org" })),
  ];
}

export function isOrganization(namespace) {
  return namespaces().some((ns) => ns.name === namespace && ns.kind === "org");
}

/** The robots API base of a namespace (the user's own, or an organization's). */
export function robotsBase(namespace) {
  if (session.user && namespace === session.user.username) return "/user/robots";
  return `/organization/${enc(namespace)}/robots`;
}

export function repoPath(namespace, name) {
  return `/repository/${enc(namespace)}/${enc(name)}`;
}

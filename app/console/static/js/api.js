// The console's only way to the service: the public HTTP API under /api/v1, as any client calls it.
// Tokens live in this module and in sessionStorage (gone when the tab closes), never in a URL, except the
// watch stream's documented access_token parameter (EventSource cannot send headers).

// Where the API is: the page is told by the server (root path + API_PREFIX) in <meta name="kvstore-api">.
const BASE = (document.querySelector('meta[name="kvstore-api"]')?.content || "/api/v1").replace(/\/$/, "");
const STORE = "kvstore.console.session";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code;
  }
}

let session = load();
const listeners = new Set();

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

function save(next) {
  session = next;
  if (next) sessionStorage.setItem(STORE, JSON.stringify(next));
  else sessionStorage.removeItem(STORE);
  for (const listener of listeners) listener(session);
}

export function onSessionChange(listener) {
  listeners.add(listener);
}

export function currentSession() {
  return session;
}

export function apiUrl(path) {
  return `${BASE}${path}`;
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  if (response.status === 204) return null;
  if (type.includes("json")) return response.json();
  return response.text();
}

async function failure(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `${response.status} ${response.statusText}` };
  }
  return new ApiError(response.status, problem);
}

let refreshing = null;

// One refresh at a time: concurrent 401s wait for the same new pair (a refresh token is spent once).
export function refresh() {
  if (!session?.refresh_token) return Promise.reject(new ApiError(401, { detail: "not logged in" }));
  if (!refreshing) {
    const spent = session.refresh_token;
    refreshing = fetch(apiUrl("/auth/refresh"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: spent }),
    })
      .then(async (response) => {
        if (!response.ok) {
          const error = await failure(response);
          if (response.status === 401) save(null);
          throw error;
        }
        const pair = await response.json();
        save({ ...session, access_token: pair.access_token, refresh_token: pair.refresh_token });
        return session;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

// A request to the API: JSON bodies encoded, problem+json errors thrown as ApiError, one refresh and
// retry when the access token has expired. `raw: true` returns the Response itself.
export async function api(path, { method = "GET", json, body, headers = {}, raw = false, auth = true } = {}) {
  const send = () => {
    const all = { ...headers };
    if (json !== undefined) all["Content-Type"] = "application/json";
    if (auth && session?.access_token) all.Authorization = `Bearer ${session.access_token}`;
    return fetch(apiUrl(path), { method, headers: all, body: json !== undefined ? JSON.stringify(json) : body });
  };
  let response = await send();
  if (response.status === 401 && auth && session?.refresh_token) {
    await refresh();
    response = await send();
  }
  if (!response.ok && !(raw && response.status === 304)) throw await failure(response);
  return raw ? response : parse(response);
}

export async function register(username, email, password) {
  const tokens = await api("/auth/register", { method: "POST", json: { username, email, password }, auth: false });
  save({ username, access_token: tokens.access_token, refresh_token: tokens.refresh_token });
}

export async function login(username, password) {
  const tokens = await api("/auth/login", { method: "POST", json: { username, password }, auth: false });
  save({ username, access_token: tokens.access_token, refresh_token: tokens.refresh_token });
}

export async function logout() {
  const spent = session?.refresh_token;
  save(null);
  if (spent) {
    await fetch(apiUrl("/auth/logout"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: spent }),
    }).catch(() => {});
  }
}

// The watch stream's URL: the token goes in the documented access_token parameter.
export function watchUrl(bucket, params = {}) {
  const query = new URLSearchParams({ ...params, access_token: session?.access_token || "" });
  return `${apiUrl(`/kv/buckets/${encodeURIComponent(bucket)}/watch`)}?${query}`;
}

// An upload with progress (fetch cannot report upload progress): XMLHttpRequest with the bearer token;
// one refresh and retry on 401.
export function upload(path, blob, { method = "PUT", headers = {}, onProgress } = {}) {
  const attempt = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, apiUrl(path));
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      if (session?.access_token) xhr.setRequestHeader("Authorization", `Bearer ${session.access_token}`);
      xhr.upload.onprogress = (event) => onProgress?.(event.loaded);
      xhr.onload = () => {
        let payload = null;
        try {
          payload = JSON.parse(xhr.responseText || "null");
        } catch {
          payload = { detail: xhr.responseText };
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(payload);
        else reject(new ApiError(xhr.status, payload));
      };
      xhr.onerror = () => reject(new ApiError(0, { detail: "network error during upload" }));
      xhr.send(blob);
    });
  return attempt().catch(async (error) => {
    if (error.status !== 401 || !session?.refresh_token) throw error;
    await refresh();
    return attempt();
  });
}

export function enc(segment) {
  return encodeURIComponent(segment);
}

// Object names may hold "/": each segment is encoded, the slashes kept.
export function encPath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

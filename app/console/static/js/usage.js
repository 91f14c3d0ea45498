// Usage (each quota as a bar: used / limit), the rate limit (the RateLimit-* headers of that answer) and
// the audit log with its filters and cursor paging.

import { api } from "./api.js";
import { attempt } from "./ui.js";
import { clear, field, formatBytes, formatTime, h } from "./dom.js";

const count = (n) => Number(n).toLocaleString("en");

const QUOTAS = [
  ["Keys", "keys", "max_keys", count],
  ["KV bytes (values + history)", (u) => u.kv_bytes + u.kv_history_bytes, "max_kv_bytes", formatBytes],
  ["Object bytes (stored + uploads in progress)", (u) => u.object_bytes + u.object_pending_bytes, "max_object_bytes", formatBytes],
  ["KV buckets", "buckets", "max_buckets", count],
  ["Open watch streams", "watch_streams", "max_watch_streams", count],
];

export async function usageView() {
  const response = await api("/usage", { raw: true });
  const usage = await response.json();
  const bars = QUOTAS.map(([label, used, limitName, format]) => {
    const value = typeof used === "function" ? used(usage) : usage[used];
    const limit = usage.limits[limitName];
    const id = `quota-${limitName}`;
    const percent = limit ? Math.min(100, (100 * value) / limit) : 0;
    const text = limit ? `${format(value)} of ${format(limit)} (${percent.toFixed(percent < 1 ? 2 : 0)}%)` : `${format(value)} (unlimited)`;
    return h("div", { class: "quota", dataset: { quota: limitName } },
      h("label", { for: id }, label),
      h("progress", { id, max: limit || 1, value: limit ? Math.min(value, limit) : 0, "aria-valuetext": text }),
      h("span", { class: "quota-text" }, text));
  });
  const limit = response.headers.get("ratelimit-limit");
  const remaining = response.headers.get("ratelimit-remaining");
  const reset = response.headers.get("ratelimit-reset");
  return h("section", {},
    h("h1", {}, "Usage"),
    h("div", { class: "card", id: "quotas" }, h("h2", {}, "Quotas"), bars),
    h("div", { class: "card", id: "rate-limit" },
      h("h2", {}, "Rate limit"),
      limit
        ? h("p", {}, `${remaining} of ${limit} requests left in the burst right now; full again in ${reset} s.`)
        : h("p", {}, "No rate limit is set for this service."),
      h("p", { class: "muted" }, "From the RateLimit-* headers of the usage request.")),
    h("div", { class: "card" },
      h("h2", {}, "Also stored"),
      h("dl", {},
        h("dt", {}, "Objects"), h("dd", {}, String(usage.objects)),
        h("dt", {}, "Change feeds"), h("dd", {}, formatBytes(usage.kv_feed_bytes)),
        h("dt", {}, "Object garbage awaiting collection"), h("dd", {}, formatBytes(usage.object_garbage_bytes)))));
}

export async function auditView() {
  const state = { cursors: [null], page: 0, next: null, action: "", key: "" };
  const tbody = h("tbody");
  const prevButton = h("button", { type: "button", onclick: () => go(state.page - 1) }, "Newer");
  const nextButton = h("button", { type: "button", onclick: () => go(state.page + 1) }, "Older");
  async function load() {
    const query = new URLSearchParams({ limit: "50" });
    if (state.action) query.set("action", state.action);
    if (state.key) query.set("key", state.key);
    const cursor = state.cursors[state.page];
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/audit?${query}`);
    state.next = page.next_cursor;
    prevButton.disabled = state.page === 0;
    nextButton.disabled = !state.next;
    clear(tbody, page.items.length === 0 ? h("tr", {}, h("td", { colSpan: 7 }, "No events.")) : page.items.map((event) =>
      h("tr", { class: event.outcome === "failure" ? "failure" : "" },
        h("td", {}, formatTime(event.ts)),
        h("th", { scope: "row" }, event.action),
        h("td", {}, event.bucket ?? ""),
        h("td", {}, event.key ?? ""),
        h("td", {}, `${event.outcome} ${event.status}${event.count > 1 ? ` ×${event.count}` : ""}`),
        h("td", {}, event.api_key_name ? `${event.username} (key ${event.api_key_name})` : event.username ?? ""),
        h("td", {}, event.client_ip ?? ""))));
  }
  function go(page) {
    if (page > state.page) state.cursors[page] = state.next;
    state.page = Math.max(0, page);
    attempt(load);
  }
  const action = h("input", { id: "audit-action", placeholder: "kv.put_key" });
  const key = h("input", { id: "audit-key" });
  const filters = h("form", {
    class: "filters",
    role: "search",
    "aria-label": "Filter the audit log",
    onsubmit: (event) => {
      event.preventDefault();
      state.action = action.value.trim();
      state.key = key.value;
      state.cursors = [null];
      state.page = 0;
      attempt(load);
    },
  }, field("Action", action, "exact, e.g. kv.put_key"), field("Key", key, "exact"), h("button", { type: "submit" }, "Filter"));
  await load();
  return h("section", {},
    h("h1", {}, "Audit log"),
    h("p", { class: "muted" }, "Every write of your tenant, newest first (recorded by the worker a moment after the request)."),
    filters,
    h("div", { class: "table-wrap" }, h("table", { id: "audit" },
      h("caption", { class: "sr-only" }, "Audit events"),
      h("thead", {}, h("tr", {}, ["Time", "Action", "Bucket", "Key", "Outcome", "Who", "Client"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    h("div", { class: "pager" }, prevButton, nextButton));
}

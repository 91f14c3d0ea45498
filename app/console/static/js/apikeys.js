// API keys: create (the secret shown once, with a copy button), list, revoke.

import { api, enc } from "./api.js";
import { attempt, toast } from "./ui.js";
import { clear, confirmDialog, field, formatTime, h, uid } from "./dom.js";

const SCOPES = [
  "kv:read", "kv:write", "kv:watch", "objects:read", "objects:write", "audit:read", "usage:read", "admin", "export", "import",
];

export async function apiKeysView() {
  const tbody = h("tbody");
  const secretBox = h("div", { id: "new-secret", "aria-live": "polite" });
  const refill = async () => {
    const { items } = await api("/auth/api-keys");
    clear(tbody, items.length === 0 ? h("tr", {}, h("td", { colSpan: 7 }, "No API keys.")) : items.map((key) =>
      h("tr", { dataset: { id: key.id } },
        h("th", { scope: "row" }, key.name),
        h("td", {}, h("code", {}, key.id)),
        h("td", {}, key.scopes.join(", ")),
        h("td", {}, `${(key.buckets || ["*"]).join(", ")}${key.key_prefix ? ` · prefix ${key.key_prefix}` : ""}`),
        h("td", {}, key.expires_at ? formatTime(key.expires_at) : "never"),
        h("td", {}, key.last_used_at ? formatTime(key.last_used_at) : "never"),
        h("td", {}, h("button", {
          type: "button",
          class: "danger small",
          "aria-label": `Revoke API key ${key.name}`,
          onclick: async () => {
            if (!(await confirmDialog(`Revoke the API key "${key.name}"? Programs using it are refused within a second.`, "Revoke"))) return;
            await attempt(async () => {
              await api(`/auth/api-keys/${enc(key.id)}`, { method: "DELETE" });
              toast(`API key ${key.name} revoked.`);
              await refill();
            });
          },
        }, "Revoke")))));
  };
  await refill();

  const name = h("input", { id: "key-name", required: true, maxLength: 100 });
  const scopeBoxes = SCOPES.map((scope) => {
    const id = uid("scope");
    return [h("input", { type: "checkbox", id, value: scope, defaultChecked: scope === "kv:read" }), h("label", { for: id }, scope)];
  });
  const buckets = h("input", { id: "key-buckets", placeholder: "*" });
  const prefix = h("input", { id: "key-prefix-limit" });
  const expires = h("input", { id: "key-expires", type: "number", min: 1, placeholder: "never" });
  const form = h("form", {
    class: "card",
    "aria-labelledby": "new-key-title",
    onsubmit: (event) => {
      event.preventDefault();
      attempt(async () => {
        const json = {
          name: name.value,
          scopes: scopeBoxes.map(([box]) => box).filter((box) => box.checked).map((box) => box.value),
        };
        const bucketList = buckets.value.split(/[ ,]+/).filter(Boolean);
        if (bucketList.length) json.buckets = bucketList;
        if (prefix.value) json.key_prefix = prefix.value;
        if (expires.value) json.expires_in = Number(expires.value);
        const created = await api("/auth/api-keys", { method: "POST", json });
        const secret = h("code", { id: "secret-value" }, created.key);
        clear(secretBox, h("div", { class: "card secret" },
          h("h2", {}, `API key ${created.name} created`),
          h("p", {}, "Copy the secret now: it is shown only once."),
          h("p", {}, secret, " ",
            h("button", {
              type: "button",
              onclick: () => {
                const selectIt = () => {
                  window.getSelection().selectAllChildren(secret);
                  toast("Copy failed here (clipboard needs HTTPS or localhost): the secret is selected, press Ctrl+C.");
                };
                if (!navigator.clipboard) return selectIt();
                return navigator.clipboard.writeText(created.key).then(() => toast("Secret copied."), selectIt);
              },
            }, "Copy"))));
        form.reset();
        await refill();
      });
    },
  },
  h("h2", { id: "new-key-title" }, "New API key"),
  field("Name", name),
  h("fieldset", {}, h("legend", {}, "Scopes"), h("div", { class: "checks" }, scopeBoxes.map((pair) => h("span", { class: "check" }, pair)))),
  field("Buckets", buckets, "space- or comma-separated; empty = every bucket"),
  field("Key prefix", prefix, "keys and object names must start with it"),
  field("Expires in (seconds)", expires, "empty = never"),
  h("button", { type: "submit", class: "primary" }, "Create API key"));

  return h("section", {},
    h("h1", {}, "API keys"),
    secretBox,
    h("div", { class: "table-wrap" }, h("table", { id: "api-keys" },
      h("caption", { class: "sr-only" }, "API keys"),
      h("thead", {}, h("tr", {}, ["Name", "Id", "Scopes", "Buckets", "Expires", "Last used", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    form);
}

// KV buckets and keys: bucket list/create/delete, the key browser (prefix and tag filters, cursor
// paging), the key editor (compare-and-swap with conflict resolution, TTL, tags, delete, history with a
// diff) and the live pane that follows the bucket's change feed.

import { ApiError, api, enc, refresh, watchUrl } from "./api.js";
import { attempt, setCleanup, toast } from "./ui.js";
import { clear, confirmDialog, field, formatBytes, formatTime, h } from "./dom.js";
import { diffLines } from "./diff.js";

const PAGE_SIZE = 50;

// -- buckets -------------------------------------------------------------------------------------------

export async function bucketsView() {
  const { items } = await api("/kv/buckets");
  const tbody = h("tbody");
  const fill = (buckets) =>
    clear(
      tbody,
      buckets.length === 0 ? h("tr", {}, h("td", { colSpan: 7 }, "No buckets yet.")) : null,
      buckets.map((bucket) =>
        h(
          "tr",
          { dataset: { bucket: bucket.name } },
          h("th", { scope: "row" }, h("a", { href: `#/kv/${enc(bucket.name)}` }, bucket.name)),
          h("td", { class: "num" }, bucket.keys),
          h("td", { class: "num" }, formatBytes(bucket.bytes)),
          h("td", { class: "num" }, bucket.history),
          h("td", { class: "num" }, bucket.ttl ? `${bucket.ttl} s` : "none"),
          h("td", {}, bucket.description || ""),
          h(
            "td",
            {},
            bucket.name === "default"
              ? null
              : h(
                  "button",
                  {
                    type: "button",
                    class: "danger small",
                    "aria-label": `Delete bucket ${bucket.name}`,
                    onclick: async () => {
                      if (!(await confirmDialog(`Delete the bucket "${bucket.name}" with all its keys and history?`))) return;
                      await attempt(async () => {
                        await api(`/kv/buckets/${enc(bucket.name)}`, { method: "DELETE" });
                        toast(`Bucket ${bucket.name} deleted.`);
                        fill((await api("/kv/buckets")).items);
                      });
                    },
                  },
                  "Delete",
                ),
          ),
        ),
      ),
    );
  fill(items);

  const name = h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}" });
  const description = h("input", { name: "description" });
  const history = h("input", { name: "history", type: "number", min: 1, max: 1000, value: 10 });
  const ttl = h("input", { name: "ttl", type: "number", min: 0, value: 0 });
  const maxValue = h("input", { name: "max_value_size", type: "number", min: 0, value: 0 });
  const form = h(
    "form",
    {
      class: "card inline-form",
      "aria-labelledby": "new-bucket",
      onsubmit: (event) => {
        event.preventDefault();
        attempt(async () => {
          await api("/kv/buckets", {
            method: "POST",
            json: {
              name: name.value.trim(),
              description: description.value,
              history: Number(history.value || 10),
              ttl: Number(ttl.value || 0),
              max_value_size: Number(maxValue.value || 0),
            },
          });
          toast(`Bucket ${name.value} created.`);
          fill((await api("/kv/buckets")).items);
          form.reset();
        });
      },
    },
    h("h2", { id: "new-bucket" }, "New bucket"),
    field("Name", name, "1–64 of A-Z a-z 0-9 _ -"),
    field("Description", description),
    field("History (revisions kept)", history),
    field("Default TTL (s, 0 = none)", ttl),
    field("Max value size (bytes, 0 = service limit)", maxValue),
    h("button", { type: "submit", class: "primary" }, "Create bucket"),
  );
  return h(
    "section",
    {},
    h("h1", {}, "KV buckets"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "buckets" },
        h("caption", { class: "sr-only" }, "KV buckets"),
        h(
          "thead",
          {},
          h("tr", {}, ["Bucket", "Keys", "Size", "History", "Default TTL", "Description", "Actions"].map((t) => h("th", { scope: "col" }, t))),
        ),
        tbody,
      ),
    ),
    form,
  );
}

// -- values ----------------------------------------------------------------------------------------------

function base64ToBytes(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function hex(bytes) {
  return Array.from(bytes.slice(0, 4096), (b) => b.toString(16).padStart(2, "0")).join(" ");
}

// The value as the editor shows it: pretty JSON, or base64 as it is (text and hex views beside it).
export function valueText(entry) {
  if (entry.encoding === "base64") return String(entry.value);
  return JSON.stringify(entry.value, null, 2);
}

function preview(entry) {
  const text = entry.encoding === "base64" ? `base64: ${entry.value}` : JSON.stringify(entry.value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

function tagsText(tags) {
  return Object.entries(tags || {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

function parseTags(text) {
  const tags = {};
  for (const line of text.split(/[\n,]/)) {
    const item = line.trim();
    if (!item) continue;
    const at = item.indexOf("=");
    if (at <= 0) throw new Error(`a tag is name=value: "${item}"`);
    tags[item.slice(0, at).trim()] = item.slice(at + 1).trim();
  }
  return tags;
}

function binaryViews(entry) {
  if (entry.encoding !== "base64") return null;
  let bytes;
  try {
    bytes = base64ToBytes(entry.value);
  } catch {
    return null;
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  return h(
    "details",
    { class: "binary" },
    h("summary", {}, `Binary value: ${bytes.length} bytes (as text and hex)`),
    h("h4", {}, "As text"),
    h("pre", { class: "value" }, text),
    h("h4", {}, "As hex"),
    h("pre", { class: "value" }, hex(bytes)),
  );
}

// -- keys ------------------------------------------------------------------------------------------------

export async function keysView(bucket) {
  const info = await api(`/kv/buckets/${enc(bucket)}`);
  const keysPath = `/kv/buckets/${enc(bucket)}/keys`;
  const state = { cursors: [null], page: 0, next: null, prefix: "", tags: [] };

  const tbody = h("tbody");
  const pageInfo = h("span", { class: "muted", "aria-live": "polite" });
  const prevButton = h("button", { type: "button", onclick: () => go(state.page - 1) }, "Previous page");
  const nextButton = h("button", { type: "button", id: "next-page", onclick: () => go(state.page + 1) }, "Next page");
  const editor = h("section", { id: "editor", class: "card", "aria-labelledby": "editor-title" }, h("h2", { id: "editor-title" }, "Key"), h("p", { class: "muted" }, "Select a key, or create one."));

  function row(entry) {
    return h(
      "tr",
      { dataset: { key: entry.key } },
      h("th", { scope: "row" }, h("button", { type: "button", class: "link", onclick: () => openKey(entry.key) }, entry.key)),
      h("td", { class: "num" }, entry.metadata.version),
      h("td", { class: "value-preview" }, h("code", {}, preview(entry))),
      h("td", {}, tagsText(entry.metadata.tags).replaceAll("\n", ", ")),
      h("td", {}, entry.metadata.expires_at ? formatTime(entry.metadata.expires_at) : "never"),
      h("td", {}, formatTime(entry.metadata.updated_at)),
    );
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.prefix) query.set("prefix", state.prefix);
    for (const tag of state.tags) query.append("tag_filter", tag);
    const cursor = state.cursors[state.page];
    if (cursor) query.set("cursor", cursor);
    const page = await api(`${keysPath}?${query}`);
    state.next = page.next_cursor;
    clear(tbody, page.items.length === 0 ? h("tr", {}, h("td", { colSpan: 6 }, "No keys match.")) : page.items.map(row));
    prevButton.disabled = state.page === 0;
    nextButton.disabled = !state.next;
    pageInfo.textContent = `Page ${state.page + 1}${page.total !== null && page.total !== undefined ? ` · ${page.total} ${page.total === 1 ? "key" : "keys"} in all` : ""}`;
  }

  function go(page) {
    if (page > state.page) state.cursors[page] = state.next;
    state.page = Math.max(0, page);
    attempt(load);
  }

  // The filter form.
  const prefixInput = h("input", { name: "prefix", id: "key-prefix" });
  const tagInput = h("input", { name: "tag_filter", id: "tag-filter", placeholder: "category:user" });
  const filters = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter keys",
      onsubmit: (event) => {
        event.preventDefault();
        state.prefix = prefixInput.value;
        state.tags = tagInput.value.split(/[ ,]+/).filter(Boolean);
        state.cursors = [null];
        state.page = 0;
        attempt(load);
      },
    },
    field("Key prefix", prefixInput),
    field("Tags (name:value, all must match)", tagInput),
    h("button", { type: "submit" }, "Filter"),
  );

  // The editor of one key.
  async function openKey(key) {
    await attempt(async () => {
      const entry = await api(`${keysPath}/${enc(key)}`);
      renderEditor(entry);
    });
  }

  function newKeyForm() {
    const keyInput = h("input", { name: "key", id: "new-key-name", required: true });
    const valueInput = h("textarea", { name: "value", id: "new-key-value", rows: 4, required: true, spellcheck: false }, '{"hello": "world"}');
    const ttlInput = h("input", { name: "ttl", type: "number", min: 0, id: "new-key-ttl" });
    const tagsInput = h("textarea", { name: "tags", rows: 2, id: "new-key-tags", placeholder: "category=user" });
    return h(
      "form",
      {
        class: "card",
        "aria-labelledby": "new-key-title",
        onsubmit: (event) => {
          event.preventDefault();
          attempt(async () => {
            let value;
            try {
              value = JSON.parse(valueInput.value);
            } catch (error) {
              throw new Error(`the value is not JSON: ${error.message}`);
            }
            const body = { value, tags: parseTags(tagsInput.value) };
            if (ttlInput.value) body.ttl = Number(ttlInput.value);
            const entry = await api(`${keysPath}/${enc(keyInput.value)}`, { method: "PUT", json: body, headers: { "If-None-Match": "*" } });
            toast(`Key ${entry.key} created (version ${entry.metadata.version}).`);
            event.target.reset();
            renderEditor(entry);
            await load();
          });
        },
      },
      h("h2", { id: "new-key-title" }, "New key"),
      field("Key", keyInput),
      field("Value (JSON)", valueInput),
      field("TTL (seconds, empty = bucket default)", ttlInput),
      field("Tags (name=value, one a line)", tagsInput),
      h("button", { type: "submit", class: "primary" }, "Create key"),
    );
  }

  function renderEditor(entry) {
    const meta = entry.metadata;
    let base = entry; // the version the user's edit is based on
    const encoding = entry.encoding === "base64" ? "base64" : "json";
    const valueInput = h("textarea", { id: "value-editor", rows: 10, spellcheck: false, class: "code" }, valueText(entry));
    const encodingSelect = h(
      "select",
      { id: "value-encoding" },
      h("option", { value: "json", selected: encoding === "json" }, "JSON"),
      h("option", { value: "base64", selected: encoding === "base64" }, "base64 (binary)"),
    );
    const ttlInput = h("input", { id: "value-ttl", type: "number", min: 0, placeholder: "keep" });
    const tagsInput = h("textarea", { id: "value-tags", rows: 3, spellcheck: false }, tagsText(meta.tags));
    const versionNote = h("p", { class: "muted", id: "editor-version" });
    const conflictBox = h("div", { id: "conflict" });
    const historyBox = h("div", { id: "history" });
    const setBase = (current) => {
      base = current;
      versionNote.textContent = `Version ${current.metadata.version} · revision ${current.metadata.revision} · ` +
        `updated ${formatTime(current.metadata.updated_at)} · expires ${current.metadata.expires_at ? formatTime(current.metadata.expires_at) : "never"}`;
    };
    setBase(entry);

    function body() {
      const out = {};
      if (encodingSelect.value === "base64") {
        out.value = valueInput.value.trim();
        out.encoding = "base64";
      } else {
        try {
          out.value = JSON.parse(valueInput.value);
        } catch (error) {
          throw new Error(`the value is not JSON: ${error.message}`);
        }
      }
      if (ttlInput.value !== "") out.ttl = Number(ttlInput.value);
      out.tags = parseTags(tagsInput.value);
      return out;
    }

    async function save(version) {
      const payload = body();
      try {
        // null: the key was deleted meanwhile and the user writes theirs again (create only).
        const condition = version === null ? { "If-None-Match": "*" } : { "If-Match": `"${version}"` };
        const saved = await api(`${keysPath}/${enc(entry.key)}`, { method: "PUT", json: payload, headers: condition });
        clear(conflictBox);
        setBase(saved);
        valueInput.value = valueText(saved);
        ttlInput.value = "";
        toast(`Saved ${saved.key}: version ${saved.metadata.version}.`);
        await load();
      } catch (error) {
        if (error instanceof ApiError && error.status === 412) {
          await showConflict(payload);
          return;
        }
        throw error;
      }
    }

    // A 412: the key moved on. Show the current value beside the user's; they keep theirs (saved over
    // the current version) or take the current one.
    async function showConflict(mine) {
      let current = null;
      try {
        current = await api(`${keysPath}/${enc(entry.key)}`);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
      const mineText = mine.encoding === "base64" ? mine.value : JSON.stringify(mine.value, null, 2);
      const currentText = current ? valueText(current) : "(the key was deleted)";
      clear(
        conflictBox,
        h(
          "section",
          { class: "conflict", "aria-labelledby": "conflict-title", role: "group" },
          h("h3", { id: "conflict-title" }, current
            ? `Conflict: the key changed since you loaded version ${base.metadata.version}; it is now version ${current.metadata.version}.`
            : "Conflict: the key was deleted meanwhile."),
          h(
            "div",
            { class: "cols" },
            h("div", {}, h("h4", {}, "Your value"), h("pre", { class: "value", id: "conflict-mine" }, mineText)),
            h("div", {}, h("h4", {}, current ? `Current value (version ${current.metadata.version})` : "Current value"), h("pre", { class: "value", id: "conflict-current" }, currentText)),
          ),
          h("div", { class: "actions" },
            current
              ? h("button", { type: "button", class: "primary", id: "keep-mine", onclick: () => attempt(() => save(current.metadata.version)) }, `Save mine over version ${current.metadata.version}`)
              : h("button", { type: "button", class: "primary", id: "keep-mine", onclick: () => attempt(() => save(null)) }, "Write mine again"),
            current
              ? h("button", { type: "button", id: "take-current", onclick: () => {
                  setBase(current);
                  valueInput.value = currentText;
                  tagsInput.value = tagsText(current.metadata.tags);
                  clear(conflictBox);
                  toast(`Loaded version ${current.metadata.version}.`);
                } }, "Use the current value")
              : null,
          ),
        ),
      );
      conflictBox.querySelector("h3").setAttribute("tabindex", "-1");
      conflictBox.querySelector("h3").focus();
    }

    async function showHistory() {
      const { items } = await api(`${keysPath}/${enc(entry.key)}/history`);
      if (items.length === 0) {
        clear(historyBox, h("p", {}, "No history kept."));
        return;
      }
      const label = (item) => `version ${item.version} · revision ${item.revision} · ${item.operation} · ${formatTime(item.updated_at)}`;
      const fromSelect = h("select", { id: "diff-from" }, items.map((item, i) => h("option", { value: i, selected: i === Math.min(1, items.length - 1) }, label(item))));
      const toSelect = h("select", { id: "diff-to" }, items.map((item, i) => h("option", { value: i, selected: i === 0 }, label(item))));
      const diffBox = h("pre", { class: "diff", id: "diff", "aria-live": "polite" });
      const text = (item) => (item.operation === "delete" ? "" : item.encoding === "base64" ? String(item.value) : JSON.stringify(item.value, null, 2));
      const render = () => {
        const lines = diffLines(text(items[Number(fromSelect.value)]), text(items[Number(toSelect.value)]));
        clear(diffBox, lines.map(([op, line]) => h("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" }, `${op === "=" ? " " : op} ${line}\n`)));
      };
      fromSelect.addEventListener("change", render);
      toSelect.addEventListener("change", render);
      clear(
        historyBox,
        h("h3", {}, `History (${items.length} revisions, newest first)`),
        h("ol", { class: "history" }, items.map((item) => h("li", {}, label(item)))),
        h("div", { class: "cols" }, field("Compare from", fromSelect), field("to", toSelect)),
        diffBox,
      );
      render();
    }

    clear(
      editor,
      h("h2", { id: "editor-title" }, `Key ${entry.key}`),
      versionNote,
      field("Value", valueInput, "JSON, pretty-printed; or base64 text for a binary value"),
      binaryViews(entry),
      h("div", { class: "cols" },
        field("Encoding", encodingSelect),
        field("TTL in seconds", ttlInput, "empty keeps the current expiry; 0 removes it")),
      field("Tags (name=value, one a line)", tagsInput),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", id: "save-key", onclick: () => attempt(() => save(base.metadata.version)) }, "Save"),
        h("button", { type: "button", id: "show-history", onclick: () => attempt(showHistory) }, "History"),
        h("button", {
          type: "button",
          class: "danger",
          onclick: async () => {
            if (!(await confirmDialog(`Delete the key "${entry.key}"?`))) return;
            await attempt(async () => {
              await api(`${keysPath}/${enc(entry.key)}`, { method: "DELETE" });
              toast(`Key ${entry.key} deleted.`);
              clear(editor, h("h2", { id: "editor-title" }, "Key"), h("p", { class: "muted" }, "Deleted."));
              await load();
            });
          },
        }, "Delete")),
      conflictBox,
      historyBox,
    );
    editor.querySelector("h2").setAttribute("tabindex", "-1");
    editor.querySelector("h2").focus();
  }

  // -- the live pane: the bucket's change feed over EventSource ------------------------------------------
  const eventsList = h("ol", { id: "live-events", class: "events", "aria-live": "polite", "aria-relevant": "additions" });
  const liveStatus = h("span", { id: "live-status", class: "badge" }, "connecting");
  let source = null;
  let lastId = null;
  let stopped = false;

  // A key written live joins the table only if the filters shown would list it.
  function matchesFilters(data) {
    if (state.prefix && !data.key.startsWith(state.prefix)) return false;
    return state.tags.every((filter) => {
      const at = filter.indexOf(":");
      return at > 0 && (data.tags || {})[filter.slice(0, at)] === filter.slice(at + 1);
    });
  }

  function highlight(data, kind) {
    const existing = tbody.querySelector(`tr[data-key="${CSS.escape(data.key)}"]`);
    if (kind === "put") {
      const entry = {
        key: data.key,
        value: data.value,
        encoding: data.encoding,
        metadata: { version: data.version, revision: data.revision, tags: data.tags, expires_at: data.expires_at, updated_at: data.updated_at },
      };
      const fresh = row(entry);
      if (existing) existing.replaceWith(fresh);
      else if (matchesFilters(data)) tbody.prepend(fresh);
      fresh.classList.add("changed");
      fresh.setAttribute("aria-description", "changed just now");
      setTimeout(() => fresh.classList.remove("changed"), 4000);
    } else if (existing) {
      existing.classList.add("removed");
      existing.setAttribute("aria-description", `${kind}d just now`);
    }
  }

  function onEvent(kind) {
    return (event) => {
      lastId = event.lastEventId || lastId;
      const data = JSON.parse(event.data);
      highlight(data, kind);
      const text = kind === "purge" ? "the bucket was deleted" : `${data.key} → version ${data.version}`;
      eventsList.prepend(h("li", { class: kind }, h("span", { class: `badge ${kind}` }, kind), ` ${text} `, h("span", { class: "muted" }, `rev ${data.revision}`)));
      while (eventsList.children.length > 50) eventsList.lastElementChild.remove();
    };
  }

  function connect() {
    const params = {};
    if (lastId) params.since = lastId;
    source = new EventSource(watchUrl(bucket, params));
    source.onopen = () => {
      liveStatus.textContent = "live";
      liveStatus.className = "badge live";
    };
    for (const kind of ["put", "delete", "expire", "purge"]) source.addEventListener(kind, onEvent(kind));
    source.addEventListener("error", (event) => {
      if (stopped) return;
      let problem = null;
      if (event.data) {
        try {
          problem = JSON.parse(event.data);
        } catch {
          problem = null;
        }
      }
      if (problem?.resume_from !== undefined && problem?.resume_from !== null) lastId = String(problem.resume_from);
      if (problem || source.readyState === EventSource.CLOSED) {
        // The stream ended (token expired, session ended...) or was refused (401): a fresh token, then resume.
        source.close();
        liveStatus.textContent = "reconnecting";
        liveStatus.className = "badge";
        setTimeout(() => {
          if (stopped) return;
          const again = problem?.code === "token_expired" || !problem ? refresh().catch(() => null) : Promise.resolve();
          again.then(() => !stopped && connect());
        }, 1000);
      } else {
        liveStatus.textContent = "reconnecting";
        liveStatus.className = "badge";
      }
    });
  }

  function stop() {
    stopped = true;
    source?.close();
    liveStatus.textContent = "paused";
    liveStatus.className = "badge";
  }

  const pauseButton = h("button", {
    type: "button",
    id: "live-toggle",
    "aria-pressed": "true",
    onclick: () => {
      if (stopped) {
        stopped = false;
        connect();
        pauseButton.textContent = "Pause";
        pauseButton.setAttribute("aria-pressed", "true");
      } else {
        stop();
        pauseButton.textContent = "Follow";
        pauseButton.setAttribute("aria-pressed", "false");
      }
    },
  }, "Pause");

  await load();
  connect();
  setCleanup(stop);

  return h(
    "section",
    {},
    h("p", { class: "crumbs" }, h("a", { href: "#/buckets" }, "KV buckets"), " / ", bucket),
    h("h1", {}, `Bucket ${bucket}`),
    h("p", { class: "muted" }, [info.description, `keeps ${info.history} revisions a key`, info.ttl ? `default TTL ${info.ttl} s` : "no default TTL"].filter(Boolean).join(" · ")),
    filters,
    h("div", { class: "layout" },
      h("div", { class: "primary-col" },
        h("div", { class: "table-wrap" },
          h("table", { id: "keys" },
            h("caption", { class: "sr-only" }, `Keys of ${bucket}`),
            h("thead", {}, h("tr", {}, ["Key", "Version", "Value", "Tags", "Expires", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
            tbody)),
        h("div", { class: "pager" }, prevButton, pageInfo, nextButton),
        editor,
        newKeyForm()),
      h("aside", { class: "card live", "aria-labelledby": "live-title" },
        h("h2", { id: "live-title" }, "Live changes ", liveStatus),
        h("p", { class: "muted" }, "Follows the bucket's change feed; changed rows are highlighted."),
        pauseButton,
        eventsList)),
  );
}

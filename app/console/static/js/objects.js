// Object buckets and objects: list, create, delete; upload with a progress bar (multipart for large
// files), download (through a short-lived presigned GET URL: the browser streams it to disk, no token in
// the URL), verify and metadata.

import { api, encPath, enc, upload } from "./api.js";
import { attempt, toast } from "./ui.js";
import { clear, confirmDialog, field, formatBytes, formatTime, h } from "./dom.js";

export const MULTIPART_THRESHOLD = 8 * 1024 * 1024; // larger files go up in parts
export const PART_SIZE = 5 * 1024 * 1024;
const PAGE_SIZE = 100;

export async function objectBucketsView() {
  const tbody = h("tbody");
  const refill = async () => {
    const { items } = await api("/objects/buckets");
    clear(
      tbody,
      items.length === 0 ? h("tr", {}, h("td", { colSpan: 6 }, "No object buckets yet.")) : null,
      items.map((bucket) =>
        h("tr", { dataset: { bucket: bucket.name } },
          h("th", { scope: "row" }, h("a", { href: `#/objects/${enc(bucket.name)}` }, bucket.name)),
          h("td", { class: "num" }, bucket.objects),
          h("td", { class: "num" }, formatBytes(bucket.bytes)),
          h("td", { class: "num" }, formatBytes(bucket.chunk_size)),
          h("td", {}, bucket.description),
          h("td", {}, h("button", {
            type: "button",
            class: "danger small",
            "aria-label": `Delete object bucket ${bucket.name}`,
            onclick: async () => {
              if (!(await confirmDialog(`Delete the object bucket "${bucket.name}" and all ${bucket.objects} objects in it?`))) return;
              await attempt(async () => {
                await api(`/objects/buckets/${enc(bucket.name)}?force=true`, { method: "DELETE" });
                toast(`Object bucket ${bucket.name} deleted.`);
                await refill();
              });
            },
          }, "Delete")),
        ),
      ),
    );
  };
  await refill();
  const name = h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9._\\-]{0,62}" });
  const description = h("input", { name: "description" });
  const chunk = h("input", { name: "chunk_size", type: "number", min: 65536, max: 8388608, placeholder: "1048576" });
  const form = h("form", {
    class: "card inline-form",
    "aria-labelledby": "new-object-bucket",
    onsubmit: (event) => {
      event.preventDefault();
      attempt(async () => {
        const json = { name: name.value.trim(), description: description.value };
        if (chunk.value) json.chunk_size = Number(chunk.value);
        await api("/objects/buckets", { method: "POST", json });
        toast(`Object bucket ${json.name} created.`);
        form.reset();
        await refill();
      });
    },
  },
  h("h2", { id: "new-object-bucket" }, "New object bucket"),
  field("Name", name, "lower case: a-z 0-9 . _ -"),
  field("Description", description),
  field("Chunk size (bytes)", chunk, "64 KiB to 8 MiB; default 1 MiB"),
  h("button", { type: "submit", class: "primary" }, "Create bucket"));
  return h("section", {},
    h("h1", {}, "Object buckets"),
    h("div", { class: "table-wrap" }, h("table", { id: "object-buckets" },
      h("caption", { class: "sr-only" }, "Object buckets"),
      h("thead", {}, h("tr", {}, ["Bucket", "Objects", "Size", "Chunk size", "Description", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    form);
}

// Uploads `file` as `name`: one PUT, or a multipart upload in PART_SIZE parts; reports bytes sent.
async function uploadFile(bucket, name, file, onProgress) {
  const objectPath = `/objects/buckets/${enc(bucket)}/objects/${encPath(name)}`;
  const type = file.type || "application/octet-stream";
  if (file.size <= MULTIPART_THRESHOLD) {
    return upload(objectPath, file, { headers: { "Content-Type": type }, onProgress });
  }
  const started = await api(`${objectPath}/uploads`, { method: "POST", headers: { "Content-Type": type } });
  const uploadPath = `${objectPath}/uploads/${enc(started.upload_id)}`;
  const parts = [];
  try {
    let sent = 0;
    for (let offset = 0, number = 1; offset < file.size; offset += PART_SIZE, number += 1) {
      const part = file.slice(offset, offset + PART_SIZE);
      await upload(`${uploadPath}/parts/${number}`, part, {
        headers: { "Content-Type": "application/octet-stream" },
        onProgress: (loaded) => onProgress(sent + loaded),
      });
      sent += part.size;
      onProgress(sent);
      parts.push(number);
    }
    return await api(`${uploadPath}/complete`, { method: "POST", json: { parts } });
  } catch (error) {
    await api(uploadPath, { method: "DELETE" }).catch(() => {});
    throw error;
  }
}

export async function objectsView(bucket) {
  const listPath = `/objects/buckets/${enc(bucket)}/objects`;
  const state = { cursors: [null], page: 0, next: null, prefix: "" };
  const tbody = h("tbody");
  const details = h("div", { id: "object-details", "aria-live": "polite" });
  const prevButton = h("button", { type: "button", onclick: () => go(state.page - 1) }, "Previous page");
  const nextButton = h("button", { type: "button", onclick: () => go(state.page + 1) }, "Next page");
  const objectUrl = (name) => `${listPath}/${encPath(name)}`;

  async function download(item) {
    const signed = await api(`${objectUrl(item.name)}/presign`, { method: "POST", json: { method: "GET", expires_in: 60 } });
    const link = h("a", { href: signed.url, download: item.name.split("/").pop(), hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    toast(`Downloading ${item.name}.`);
  }

  async function verify(item) {
    const result = await api(`${objectUrl(item.name)}/verify`);
    clear(details, h("section", { class: "card", "aria-labelledby": "verify-title" },
      h("h2", { id: "verify-title" }, `Verify ${item.name}`),
      h("p", { id: "verify-result", class: result.valid ? "ok" : "bad" }, result.valid ? "Valid: the stored chunks hash to the recorded SHA-256." : `Not valid (${result.missing_chunks} chunks missing).`),
      h("dl", {},
        h("dt", {}, "Expected SHA-256"), h("dd", {}, h("code", {}, result.expected)),
        h("dt", {}, "Actual SHA-256"), h("dd", {}, h("code", {}, result.actual ?? "–")),
        h("dt", {}, "Size"), h("dd", {}, formatBytes(result.size)),
        h("dt", {}, "Hashed at"), h("dd", {}, formatTime(result.hashed_at)))));
  }

  async function metadata(item) {
    const response = await api(objectUrl(item.name), { method: "HEAD", raw: true });
    const rows = [];
    response.headers.forEach((value, header) => {
      if (["content-type", "content-length", "etag", "last-modified"].includes(header) || header.startsWith("x-object-")) rows.push([header, value]);
    });
    clear(details, h("section", { class: "card", "aria-labelledby": "meta-title" },
      h("h2", { id: "meta-title" }, `Metadata of ${item.name}`),
      h("dl", {}, rows.sort().map(([k, v]) => [h("dt", {}, k), h("dd", {}, h("code", {}, v))]))));
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (state.prefix) query.set("prefix", state.prefix);
    const cursor = state.cursors[state.page];
    if (cursor) query.set("cursor", cursor);
    const page = await api(`${listPath}?${query}`);
    state.next = page.next_cursor;
    prevButton.disabled = state.page === 0;
    nextButton.disabled = !state.next;
    clear(tbody, page.items.length === 0 ? h("tr", {}, h("td", { colSpan: 5 }, "No objects.")) : page.items.map((item) =>
      h("tr", { dataset: { name: item.name } },
        h("th", { scope: "row" }, item.name),
        h("td", { class: "num" }, formatBytes(item.size)),
        h("td", {}, item.content_type),
        h("td", {}, formatTime(item.updated_at)),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "small", "aria-label": `Download ${item.name}`, onclick: () => attempt(() => download(item)) }, "Download"),
          h("button", { type: "button", class: "small", "aria-label": `Verify ${item.name}`, onclick: () => attempt(() => verify(item)) }, "Verify"),
          h("button", { type: "button", class: "small", "aria-label": `Metadata of ${item.name}`, onclick: () => attempt(() => metadata(item)) }, "Metadata"),
          h("button", {
            type: "button",
            class: "small danger",
            "aria-label": `Delete ${item.name}`,
            onclick: async () => {
              if (!(await confirmDialog(`Delete the object "${item.name}"?`))) return;
              await attempt(async () => {
                await api(objectUrl(item.name), { method: "DELETE" });
                toast(`${item.name} deleted.`);
                await load();
              });
            },
          }, "Delete")))));
  }

  function go(page) {
    if (page > state.page) state.cursors[page] = state.next;
    state.page = Math.max(0, page);
    attempt(load);
  }

  const fileInput = h("input", { type: "file", id: "upload-file", required: true });
  const nameInput = h("input", { id: "upload-name", placeholder: "the file's name" });
  const progress = h("progress", { id: "upload-progress", max: 100, value: 0, "aria-label": "Upload progress" });
  const progressText = h("span", { id: "upload-progress-text", "aria-live": "polite" });
  const uploadButton = h("button", { type: "submit", class: "primary" }, "Upload");
  const uploadForm = h("form", {
    class: "card",
    "aria-labelledby": "upload-title",
    onsubmit: (event) => {
      event.preventDefault();
      const file = fileInput.files[0];
      if (!file) return;
      const name = nameInput.value.trim() || file.name;
      uploadButton.disabled = true;
      progress.max = Math.max(file.size, 1);
      progress.value = 0;
      let lastAnnounced = -1;
      attempt(async () => {
        const stored = await uploadFile(bucket, name, file, (sent) => {
          progress.value = sent;
          const percent = Math.floor((100 * sent) / Math.max(file.size, 1));
          if (percent >= lastAnnounced + 10 || percent === 100) {
            lastAnnounced = percent;
            progressText.textContent = `${percent}% (${formatBytes(sent)} of ${formatBytes(file.size)})`;
          }
        });
        progress.value = progress.max;
        progressText.textContent = `Uploaded ${stored.name}: ${formatBytes(stored.size)}, SHA-256 ${stored.sha256}`;
        toast(`Uploaded ${stored.name}.`);
        uploadForm.reset();
        await load();
      }).finally(() => {
        uploadButton.disabled = false;
      });
    },
  },
  h("h2", { id: "upload-title" }, "Upload"),
  field("File", fileInput, `files over ${formatBytes(MULTIPART_THRESHOLD)} go up as a multipart upload in ${formatBytes(PART_SIZE)} parts`),
  field("Object name", nameInput, "may contain /; default: the file's name"),
  h("div", { class: "progress-row" }, progress, progressText),
  uploadButton);

  const prefixInput = h("input", { id: "object-prefix" });
  const filters = h("form", {
    class: "filters",
    role: "search",
    "aria-label": "Filter objects",
    onsubmit: (event) => {
      event.preventDefault();
      state.prefix = prefixInput.value;
      state.cursors = [null];
      state.page = 0;
      attempt(load);
    },
  }, field("Name prefix", prefixInput), h("button", { type: "submit" }, "Filter"));

  await load();
  return h("section", {},
    h("p", { class: "crumbs" }, h("a", { href: "#/objects" }, "Object buckets"), " / ", bucket),
    h("h1", {}, `Objects in ${bucket}`),
    uploadForm,
    filters,
    h("div", { class: "table-wrap" }, h("table", { id: "objects" },
      h("caption", { class: "sr-only" }, `Objects in ${bucket}`),
      h("thead", {}, h("tr", {}, ["Name", "Size", "Type", "Updated", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)),
    h("div", { class: "pager" }, prevButton, nextButton),
    details);
}

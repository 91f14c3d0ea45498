// Shared page furniture: the alert region for errors (the problem+json `detail`), the status region for
// confirmations, and what the current view must stop when another one replaces it.

import { ApiError, currentSession } from "./api.js";
import { clear, h } from "./dom.js";

let cleanup = null;

export function showError(error) {
  const box = document.getElementById("error");
  const detail = error instanceof ApiError ? error.message : String(error?.message || error);
  const code = error instanceof ApiError && error.code ? ` (${error.code})` : "";
  clear(box, h("span", {}, `Error: ${detail}${code}`), " ", h("button", { type: "button", class: "link", onclick: () => clear(box) }, "Dismiss"));
}

export function clearError() {
  clear(document.getElementById("error"));
}

export function toast(message) {
  clear(document.getElementById("toast"), message);
}

// Runs an async action with its error shown in the alert region; returns its result (undefined on error).
export async function attempt(action) {
  clearError();
  try {
    return await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && !currentSession()) location.hash = "#/login";
    showError(error);
    return undefined;
  }
}

export function setCleanup(fn) {
  cleanup = fn;
}

export function runCleanup() {
  if (cleanup) cleanup();
  cleanup = null;
}

// A confirmation for the page the user is taken to next (shown by the router after it clears the last one).
let flash = "";

export function toastNext(message) {
  flash = message;
}

export function takeFlash() {
  const message = flash;
  flash = "";
  return message;
}

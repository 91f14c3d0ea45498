// The console's shell: the session (log in, register, log out), the navigation and the views, chosen by
// the URL fragment (#/buckets, #/kv/<bucket>, #/objects/<bucket>, #/usage, #/audit, #/api-keys).

import { currentSession, login, logout, onSessionChange, register } from "./api.js";
import { attempt, clearError, runCleanup, showError, takeFlash, toast, toastNext } from "./ui.js";
import { clear, field, h } from "./dom.js";
import { bucketsView, keysView } from "./kv.js";
import { objectBucketsView, objectsView } from "./objects.js";
import { auditView, usageView } from "./usage.js";
import { apiKeysView } from "./apikeys.js";

const main = document.getElementById("main");

function authView() {
  const loginName = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true });
  const loginPassword = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const regName = h("input", { id: "register-username", name: "username", autocomplete: "username", required: true, pattern: "[A-Za-z0-9_.\\-]{3,32}" });
  const regEmail = h("input", { id: "register-email", name: "email", type: "email", autocomplete: "email", required: true });
  const regPassword = h("input", { id: "register-password", name: "password", type: "password", autocomplete: "new-password", required: true, minLength: 8 });
  return h(
    "div",
    { class: "auth" },
    h("h1", {}, "kvstore console"),
    h("p", { class: "muted" }, "Your tenant's keys, buckets, objects, usage, audit trail and API keys, through the public API."),
    h(
      "div",
      { class: "cols" },
      h(
        "form",
        {
          class: "card",
          "aria-labelledby": "login-title",
          onsubmit: (event) => {
            event.preventDefault();
            attempt(async () => {
              await login(loginName.value.trim(), loginPassword.value);
              location.hash = "#/buckets";
            });
          },
        },
        h("h2", { id: "login-title" }, "Log in"),
        field("Username", loginName),
        field("Password", loginPassword),
        h("button", { type: "submit", class: "primary" }, "Log in"),
      ),
      h(
        "form",
        {
          class: "card",
          "aria-labelledby": "register-title",
          onsubmit: (event) => {
            event.preventDefault();
            attempt(async () => {
              await register(regName.value.trim(), regEmail.value.trim(), regPassword.value);
              location.hash = "#/buckets";
            });
          },
        },
        h("h2", { id: "register-title" }, "Create an account"),
        field("Username", regName, "3–32 of a-z 0-9 _ . -"),
        field("Email", regEmail),
        field("Password", regPassword, "8–72 bytes with an upper-case letter, a lower-case letter and a digit"),
        h("button", { type: "submit", class: "primary" }, "Register"),
      ),
    ),
  );
}

function renderWho() {
  const who = document.getElementById("who");
  const nav = document.getElementById("nav");
  const session = currentSession();
  nav.hidden = !session;
  if (!session) {
    clear(who);
    return;
  }
  clear(
    who,
    h("span", { class: "user" }, session.username),
    h(
      "button",
      {
        type: "button",
        id: "logout",
        onclick: () =>
          attempt(async () => {
            await logout();
            toastNext("Logged out.");
            location.hash = "#/login";
          }),
      },
      "Log out",
    ),
  );
}

const routes = [
  [/^#\/buckets$/, () => bucketsView()],
  [/^#\/kv\/([^/]+)$/, (m) => keysView(decodeURIComponent(m[1]))],
  [/^#\/objects$/, () => objectBucketsView()],
  [/^#\/objects\/([^/]+)$/, (m) => objectsView(decodeURIComponent(m[1]))],
  [/^#\/usage$/, () => usageView()],
  [/^#\/audit$/, () => auditView()],
  [/^#\/api-keys$/, () => apiKeysView()],
];

async function route() {
  runCleanup();
  clearError();
  toast(takeFlash()); // a confirmation belongs to the page it was made on

  renderWho();
  const hash = location.hash || "#/buckets";
  if (!currentSession()) {
    if (hash !== "#/login") {
      location.hash = "#/login";
      return;
    }
    clear(main, authView());
    document.title = "Log in · kvstore console";
    return;
  }
  if (hash === "#/login") {
    location.hash = "#/buckets";
    return;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    const current = hash === link.getAttribute("href") || (link.getAttribute("href") === "#/buckets" && hash.startsWith("#/kv/")) ||
      (link.getAttribute("href") === "#/objects" && hash.startsWith("#/objects/"));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const found = routes.find(([pattern]) => pattern.test(hash));
  if (!found) {
    location.hash = "#/buckets";
    return;
  }
  const [pattern, view] = found;
  clear(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await view(hash.match(pattern));
    clear(main, content);
    const heading = main.querySelector("h1");
    document.title = `${heading ? heading.textContent : "kvstore"} · kvstore console`;
    main.focus({ preventScroll: true });
  } catch (error) {
    clear(main, h("h1", {}, "Something went wrong"));
    showError(error);
    if (!currentSession()) location.hash = "#/login";
  }
}

onSessionChange(renderWho);
window.addEventListener("hashchange", route);
route();

// The vmm web console: wires the views together. Served at /ui/ by the ops HTTP listener;
// every call goes to the daemon's Connect API at /api on the same origin.
import "@xterm/xterm/css/xterm.css";
import "../static/console.css";
import { createApi, isUnauthenticated, token } from "./api.js";
import { CreateForm } from "./create-form.js";
import { h, replaceChildren } from "./dom.js";
import { ErrorBanner } from "./errors.js";
import { SandboxPanel } from "./sandbox-panel.js";
import { SandboxesView } from "./sandboxes-view.js";
import { SnapshotsView } from "./snapshots-view.js";

const api = createApi();
const banner = new ErrorBanner();
const tokenForm = createTokenForm();
let panel: SandboxPanel | undefined;
const panelSlot = h("div", { id: "panel-slot" });

function onError(action: string, err: unknown): void {
  banner.show(action, err);
  if (isUnauthenticated(err)) {
    tokenForm.hidden = false;
    tokenForm.querySelector("input")?.focus();
  }
}

const sandboxes = new SandboxesView({
  api,
  onError,
  onSelect: (id) => openPanel(id),
  onChange: (list) => {
    if (panel === undefined) return;
    if (list.some((s) => s.id === panelId)) void panel.refresh();
  },
});
const snapshots = new SnapshotsView({ api, onError, onRestored: (id) => openPanel(id) });
const createForm = new CreateForm({ api, onError, onCreated: (id) => openPanel(id) });
let panelId = "";

function openPanel(id: string): void {
  banner.clear();
  if (panelId === id && panel) {
    void panel.refresh();
    return;
  }
  panel?.dispose();
  panelId = id;
  panel = new SandboxPanel(id, {
    api,
    onError,
    onChanged: () => {
      void sandboxes.refresh().catch((err: unknown) => onError("Listing sandboxes", err));
      void snapshots.refresh();
    },
    onRemoved: () => closePanel(),
  });
  replaceChildren(panelSlot, panel.el);
  sandboxes.select(id);
  void panel.refresh();
}

function closePanel(): void {
  panel?.dispose();
  panel = undefined;
  panelId = "";
  replaceChildren(panelSlot);
  sandboxes.select("");
}

function createTokenForm(): HTMLFormElement {
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    placeholder: "[http] auth_token",
  });
  const form = h(
    "form",
    {
      id: "token-form",
      hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        token.set(input.value.trim());
        input.value = "";
        form.hidden = true;
        banner.clear();
        restartWatch();
        void snapshots.refresh();
      },
    },
    h("label", { for: "token" }, "API token (kept for this tab only)"),
    input,
    h("button", { type: "submit" }, "Use token"),
  );
  return form;
}

let watching = new AbortController();
function restartWatch(): void {
  watching.abort();
  watching = new AbortController();
  void sandboxes.watch(watching.signal);
}

replaceChildren(
  document.body,
  h(
    "header",
    {},
    h("h1", {}, "vmm console"),
    h(
      "button",
      {
        type: "button",
        id: "token-button",
        onclick: () => {
          tokenForm.hidden = !tokenForm.hidden;
        },
      },
      "Token",
    ),
  ),
  tokenForm,
  banner.el,
  h("main", {}, createForm.el, sandboxes.el, panelSlot, snapshots.el),
);
restartWatch();
void snapshots.refresh();

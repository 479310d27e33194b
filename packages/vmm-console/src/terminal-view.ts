import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { token } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { errorFromWire } from "./errors.js";
import {
  TERMINAL_PATH,
  TERMINAL_SUBPROTOCOL,
  type TerminalClientMessage,
  type TerminalServerMessage,
  TOKEN_SUBPROTOCOL_PREFIX,
} from "./terminal-protocol.js";

/**
 * An xterm.js terminal running an interactive shell in one sandbox over the console's
 * WebSocket (protocol: terminal-protocol.ts). Keystrokes go out as binary frames, the pty's
 * size follows the element's, and the status line says when the process exited and how.
 */
export class TerminalView {
  readonly el: HTMLElement;
  private readonly status = h("span", { class: "terminal-status", role: "status" }, "connecting");
  private readonly screen = h("div", { class: "terminal-screen" });
  private readonly term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: "ui-monospace, monospace",
    fontSize: 13,
    scrollback: 5000,
  });
  private readonly fit = new FitAddon();
  private readonly ws: WebSocket;
  private readonly onWindowResize = () => this.fit.fit();
  private readonly encoder = new TextEncoder();

  constructor(sandboxId: string, onError: (action: string, err: unknown) => void) {
    this.el = h(
      "div",
      { class: "terminal", "data-sandbox": sandboxId },
      h(
        "div",
        { class: "terminal-bar" },
        h("strong", {}, `Terminal: ${sandboxId}`),
        " ",
        this.status,
      ),
      this.screen,
    );
    this.term.loadAddon(this.fit);
    const params = new URLSearchParams({ sandbox: sandboxId, cols: "80", rows: "24" });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const t = token.get();
    // Browsers cannot set headers on a WebSocket: the token rides as a subprotocol.
    this.ws = new WebSocket(`${scheme}//${location.host}${TERMINAL_PATH}?${params}`, [
      TERMINAL_SUBPROTOCOL,
      ...(t !== "" ? [TOKEN_SUBPROTOCOL_PREFIX + t] : []),
    ]);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => this.setStatus("starting");
    this.ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
      if (typeof e.data !== "string") {
        this.term.write(new Uint8Array(e.data));
        return;
      }
      const m = JSON.parse(e.data) as TerminalServerMessage;
      if (m.type === "started") {
        this.setStatus("running");
        this.sendSize();
      } else if (m.type === "exit") {
        const how = m.timedOut
          ? "timed out"
          : m.signal
            ? `killed by ${m.signal}`
            : `exit code ${m.exitCode}`;
        this.setStatus(`exited (${how})`);
      } else {
        this.setStatus(`failed: ${m.code}`);
        onError("Terminal", errorFromWire(m.code, m.message));
      }
    };
    this.ws.onclose = (e) => {
      if (this.status.dataset.state === "running" || this.status.dataset.state === "starting") {
        this.setStatus(`closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`);
      } else if (this.status.dataset.state === "connecting") {
        this.setStatus("could not connect (wrong token, or the sandbox is gone?)");
      }
    };
    this.term.onData((d) => this.sendBytes(this.encoder.encode(d)));
    this.term.onBinary((d) => this.sendBytes(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    this.term.onResize(() => this.sendSize());
  }

  /** Puts the terminal on screen (call once `el` is in the document) and focuses it. */
  attach(): void {
    this.term.open(this.screen);
    this.fit.fit();
    this.term.focus();
    window.addEventListener("resize", this.onWindowResize);
  }

  /** Closes the socket (which ends the process) and frees the terminal. */
  dispose(): void {
    window.removeEventListener("resize", this.onWindowResize);
    this.ws.close(1000, "closed by the user");
    this.term.dispose();
    replaceChildren(this.el);
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
    this.status.dataset.state = text.split(/[ :(]/)[0] ?? text;
  }

  private sendBytes(data: Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  private sendSize(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const m: TerminalClientMessage = { type: "resize", cols: this.term.cols, rows: this.term.rows };
    this.ws.send(JSON.stringify(m));
  }
}

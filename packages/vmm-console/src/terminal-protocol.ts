// The console terminal's WebSocket protocol, shared by the browser (terminal-view.ts) and the
// daemon (vmm-daemon src/console/terminal-socket.ts). Dependency-free and DOM-free on purpose:
// the daemon imports it as `@vmm/console/terminal-protocol`. Documented in docs/console.md.

/** Path of the terminal WebSocket; query `sandbox=<id>`, optional `cols`, `rows`, repeated `cmd`. */
export const TERMINAL_PATH = "/ui/terminal";

/** Subprotocol a terminal client must offer; the server selects it. */
export const TERMINAL_SUBPROTOCOL = "vmm.terminal.v1";

/**
 * Prefix of the subprotocol that carries the bearer token (`vmm.token.<token>`): browsers
 * cannot set an Authorization header on a WebSocket. The ops listener checks it.
 */
export const TOKEN_SUBPROTOCOL_PREFIX = "vmm.token.";

/** WebSocket close code after an error message (its reason is the error code). */
export const CLOSE_ERROR = 4000;

/**
 * A control message from the browser (a text frame holding JSON). Binary frames from the
 * browser are keystrokes: bytes for the process's stdin.
 */
export type TerminalClientMessage = { readonly type: "resize"; cols: number; rows: number };

/**
 * A control message from the daemon (a text frame holding JSON). Binary frames from the daemon
 * are terminal output. After `exit` or `error` the daemon closes the socket (1000 after exit,
 * CLOSE_ERROR after error).
 */
export type TerminalServerMessage =
  | { readonly type: "started" }
  | {
      readonly type: "exit";
      readonly exitCode: number;
      readonly signal?: string;
      readonly timedOut: boolean;
    }
  /** `code` is the Connect error code (`not_found`, `failed_precondition`, …). */
  | { readonly type: "error"; readonly code: string; readonly message: string };

/** Largest terminal dimension accepted (the Exec API's TerminalSize bound). */
export const MAX_TERMINAL_DIMENSION = 65535;

/**
 * Parses a control message from the browser; throws an Error saying what is wrong when `text`
 * is not one.
 */
export function parseClientMessage(text: string): TerminalClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("control message is not JSON");
  }
  if (typeof value !== "object" || value === null) throw new Error("control message is no object");
  const m = value as Record<string, unknown>;
  if (m.type !== "resize")
    throw new Error(`unknown control message type ${JSON.stringify(m.type)}`);
  if (!isDimension(m.cols) || !isDimension(m.rows)) {
    throw new Error(`resize: cols and rows must be integers 1..${MAX_TERMINAL_DIMENSION}`);
  }
  return { type: "resize", cols: m.cols, rows: m.rows };
}

/** True for an integer terminal width or height the Exec API accepts. */
export function isDimension(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= MAX_TERMINAL_DIMENSION;
}

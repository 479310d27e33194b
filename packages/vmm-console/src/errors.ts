import { Code, ConnectError } from "@connectrpc/connect";
import { h, replaceChildren } from "./dom.js";

/** Connect's name for a code: `not_found`, `failed_precondition`, … */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/** A ConnectError from a code name and message the daemon sent outside Connect (terminal). */
export function errorFromWire(code: string, message: string): ConnectError {
  const known = Object.values(Code).find((c) => typeof c === "number" && codeName(c) === code);
  return new ConnectError(message, typeof known === "number" ? known : Code.Unknown);
}

/** An error the console itself finds in a form, shown like the API's own. */
export class InputError extends Error {
  override name = "InputError";
}

/** `[code] message` for any error: a Connect error's code, or what the console found. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof InputError) return { code: "invalid_argument", message: err.message };
  const e = ConnectError.from(err);
  return { code: codeName(e.code), message: e.rawMessage };
}

/** The page's error banner: one error at a time, with what failed, until dismissed. */
export class ErrorBanner {
  readonly el = h("div", { id: "error", role: "alert", hidden: true });

  /** Shows `err` as `<action>: [code] message`. */
  show(action: string, err: unknown): void {
    const { code, message } = describeError(err);
    replaceChildren(
      this.el,
      h("strong", {}, `${action} failed: `),
      h("code", { class: "code" }, code),
      " ",
      h("span", { class: "message" }, message),
      h(
        "button",
        { type: "button", class: "dismiss", "aria-label": "dismiss", onclick: () => this.clear() },
        "×",
      ),
    );
    this.el.hidden = false;
  }

  clear(): void {
    this.el.hidden = true;
    replaceChildren(this.el);
  }
}

import {
  Code,
  ConnectError,
  createContextKey,
  type Interceptor,
  type StreamResponse,
} from "@connectrpc/connect";
import { isInternal, toConnectError } from "./error-mapping.js";
import type { Logger } from "./logger.js";

/**
 * Which listener a call arrived on; set per listener through the adapter's
 * contextValues. "http" is the ops listener's `/api` (it authenticates with
 * its own token before the call reaches connect).
 */
export type ListenerKind = "unix" | "tcp" | "http";
export const listenerKey = createContextKey<ListenerKind>("unix", { description: "listener" });

/**
 * Maps every error a handler throws (also while a stream is iterated) to a
 * ConnectError and logs one line per call with method, code and duration:
 * failed calls at info (internal errors at error, with their hidden cause),
 * successful ones at debug — a busy daemon serves thousands of Runs a second,
 * and a log write per call is a measurable share of a Run's latency.
 */
export function createErrorAndLogInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    const done = (err: unknown) => {
      const durationMs = Math.round((performance.now() - started) * 100) / 100;
      if (err === undefined) {
        log.debug({ method, code: "ok", durationMs }, "rpc");
        return;
      }
      const hangUp = clientHangUp(err, req.signal);
      if (hangUp !== undefined) {
        // The client went away mid-call (cancelled, reset, disconnected): normal, no stack.
        log.debug({ method, code: "canceled", durationMs, reason: hangUp }, "rpc: client hung up");
        return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err);
      }
      const mapped = toConnectError(err);
      const code = Code[mapped.code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
      if (isInternal(mapped))
        log.error({ method, code, durationMs, err: mapped.cause ?? err }, "rpc");
      else log.info({ method, code, durationMs, error: mapped.rawMessage }, "rpc");
      return mapped;
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw done(err);
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    return { ...res, message: wrapStream(res, done) } as StreamResponse;
  };
}

async function* wrapStream<T>(
  res: { message: AsyncIterable<T> },
  done: (err: unknown) => ConnectError | undefined,
): AsyncIterable<T> {
  try {
    yield* res.message;
  } catch (err) {
    throw done(err);
  }
  done(undefined);
}

/** Node error codes of a peer that closed, reset or cancelled its side of a call. */
const HANG_UP_CODES = new Set([
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
  "ECONNRESET",
  "EPIPE",
]);

/**
 * Says why a failure is the client's hang-up (a Node error code, "aborted"),
 * or undefined when it is not one. A call whose signal was aborted (connect
 * aborts it when the client cancels or the stream closes) counts whatever
 * the error; otherwise the cause chain is searched for a hang-up code or an
 * AbortError (connect-node reports write errors to the handler's iterator).
 */
function clientHangUp(err: unknown, signal: AbortSignal): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && HANG_UP_CODES.has(code)) return code;
    if (e.name === "AbortError") return "aborted";
    e = e.cause;
  }
  if (err instanceof ConnectError && err.code === Code.Canceled) return "canceled";
  return signal.aborted ? "aborted" : undefined;
}

/**
 * Requires `authorization: Bearer <token>` on calls that arrived over TCP.
 * Unix socket calls are authorized by the socket's file mode. The daemon
 * checks the token on the raw request headers before any body is read; this
 * interceptor is the second line (for other embedders of the routes).
 */
export function createAuthInterceptor(token: string | undefined): Interceptor {
  const expected = token ? `Bearer ${token}` : undefined;
  return (next) => async (req) => {
    if (req.contextValues.get(listenerKey) === "tcp" && expected !== undefined) {
      const got = req.header.get("authorization");
      if (got === null) throw new ConnectError("missing bearer token", Code.Unauthenticated);
      if (!timingSafeEqualStrings(got, expected)) {
        throw new ConnectError("invalid bearer token", Code.Unauthenticated);
      }
    }
    return next(req);
  };
}

/** Adds the daemon's version to every response's headers (`vmm-version`). */
export function createVersionHeaderInterceptor(version: string): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    res.header.set("vmm-version", version);
    return res;
  };
}

function timingSafeEqualStrings(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

import {
  Code,
  ConnectError,
  createContextKey,
  type Interceptor,
  type StreamResponse,
} from "@connectrpc/connect";
import { isInternal, toConnectError } from "./error-mapping.js";
import type { Logger } from "./logger.js";

/** Which listener a call arrived on; set per listener through the adapter's contextValues. */
export type ListenerKind = "unix" | "tcp";
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

/**
 * Requires `authorization: Bearer <token>` on calls that arrived over TCP.
 * Unix socket calls are authorized by the socket's file mode.
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

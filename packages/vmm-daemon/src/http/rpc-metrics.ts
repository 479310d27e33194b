import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";

/** Receives one finished call: its method, gRPC code name ("ok", "not_found"…) and duration. */
export type RpcObserver = (method: string, code: string, seconds: number) => void;

/** A gRPC code as a lower-case name: Code.NotFound → "not_found" (as the rpc log line writes it). */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/**
 * Reports every call to `observe` once it ended: a unary call when its
 * answer is ready, a streaming call when its response stream ended, failed
 * or was abandoned by the client (then "canceled", also when the handler
 * ended the stream quietly because the call's signal aborted). Put it first in the
 * interceptor list (outermost), so it sees the code the client sees.
 */
export function createRpcMetricsInterceptor(observe: RpcObserver): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const method = `${req.service.typeName}/${req.method.name}`;
    let reported = false;
    const done = (code: Code | undefined) => {
      if (reported) return;
      reported = true;
      observe(method, codeName(code), (performance.now() - started) / 1000);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      done(ConnectError.from(err).code);
      throw err;
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    return { ...res, message: observeStream(res.message, req.signal, done) } as StreamResponse;
  };
}

async function* observeStream<T>(
  messages: AsyncIterable<T>,
  signal: AbortSignal,
  done: (code: Code | undefined) => void,
): AsyncIterable<T> {
  let outcome: Code | undefined = Code.Canceled; // unless it ends or fails on its own
  try {
    yield* messages;
    // Handlers end their stream quietly when the call's signal aborts (the client cancelled
    // or went away, or shutdown): that is a cancelled call, not a completed one.
    outcome = signal.aborted ? Code.Canceled : undefined;
  } catch (err) {
    outcome = ConnectError.from(err).code;
    throw err;
  } finally {
    done(outcome);
  }
}

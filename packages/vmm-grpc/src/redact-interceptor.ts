import { ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";

/** A host directory and the placeholder clients see instead of it, e.g. data_dir → `<data_dir>`. */
export interface RedactedPath {
  readonly path: string;
  readonly placeholder: string;
}

/**
 * Replaces the daemon's own directories in error messages sent to clients
 * (`/var/lib/vmm/sandboxes/x/api.sock` → `<data_dir>/sandboxes/x/api.sock`):
 * where the daemon keeps its files is a host detail (config
 * `grpc.expose_host_details`). Runs outside the error-mapping interceptor,
 * on ConnectErrors only; the log keeps the original text.
 */
export function createRedactInterceptor(paths: readonly RedactedPath[]): Interceptor {
  // Longest first, so a data_dir inside another listed directory is named by the inner one.
  const ordered = [...paths]
    .filter((p) => p.path !== "" && p.path !== "/")
    .sort((a, b) => b.path.length - a.path.length);
  const redact = (err: unknown): unknown => {
    if (!(err instanceof ConnectError) || ordered.length === 0) return err;
    let message = err.rawMessage;
    for (const p of ordered) message = message.replaceAll(p.path, p.placeholder);
    if (message === err.rawMessage) return err;
    // Details are dropped: the daemon sends none, and they could repeat the text.
    return new ConnectError(message, err.code, err.metadata, undefined, err.cause);
  };
  return (next) => async (req) => {
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw redact(err);
    }
    if (!res.stream) return res;
    const inner = res.message;
    async function* message() {
      try {
        yield* inner;
      } catch (err) {
        throw redact(err);
      }
    }
    return { ...res, message: message() } as StreamResponse;
  };
}

/**
 * The daemon side: Create → ready (Events filtered by the id we choose,
 * subscribed before Create) → first `Run true` → Remove, over gRPC.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { DaemonClients } from "./daemon.js";
import type { Samples } from "./stats.js";

/**
 * Subscribes to Events of `id` (the call starts at once) and resolves with
 * performance.now() of its `ready` event; rejects on `failed`/`removed` or
 * when the stream ends. Abort `signal` to unsubscribe.
 */
export function waitReadyEvent(
  clients: DaemonClients,
  id: string,
  signal: AbortSignal,
): Promise<number> {
  const stream = clients.sandbox.events({ id }, { signal });
  const p = (async () => {
    for await (const ev of stream) {
      if (ev.action === "ready") return performance.now();
      if (ev.action === "failed" || ev.action === "removed") {
        throw new Error(`sandbox ${id} ${ev.action}: ${ev.attributes.error ?? ""}`);
      }
    }
    throw new Error(`Events stream of ${id} ended before ready`);
  })();
  p.catch(() => {}); // awaited by the caller; keeps an early rejection from being unhandled
  return p;
}

/** `Run true` over gRPC: performance.now() of the first message, and the exit code. */
export async function runTrueGrpc(
  clients: DaemonClients,
  id: string,
  signal: AbortSignal,
): Promise<{ firstMs: number; code: number | undefined }> {
  let firstMs: number | undefined;
  let code: number | undefined;
  for await (const m of clients.sandbox.run({ id, cmd: ["true"] }, { signal })) {
    firstMs ??= performance.now();
    if (m.done) code = m.exitCode;
  }
  return { firstMs: firstMs ?? performance.now(), code };
}

/**
 * One daemon iteration; adds `create_to_ready_ms`, `first_run_first_msg_ms`,
 * `first_run_ms` (unless `runFirst` is false), `remove_ms`, `total_ms`.
 * Remove uses force (SIGKILL, like the raw side's kill). On error the
 * sandbox is removed (untimed) before the error propagates. `afterReady`
 * (e.g. an Inspect check) runs right after ready, untimed: its time is left
 * out of `total_ms`.
 */
export async function daemonIteration(
  clients: DaemonClients,
  id: string,
  runFirst: boolean,
  samples: Samples,
  signal: AbortSignal,
  afterReady?: (id: string) => Promise<void>,
  /** Extra Create fields, e.g. `{ image }`. */
  createFields: { readonly image?: string } = {},
): Promise<void> {
  const sub = new AbortController();
  const onAbort = () => sub.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let created = false;
  let removed = false;
  try {
    const ready = waitReadyEvent(clients, id, sub.signal);
    const t0 = performance.now();
    await clients.sandbox.create({ id, network: { mode: "none" }, ...createFields }, { signal });
    created = true;
    const tReady = await ready;
    sub.abort();
    samples.add("create_to_ready_ms", tReady - t0);
    let untimedMs = 0;
    if (afterReady) {
      const h0 = performance.now();
      await afterReady(id);
      untimedMs = performance.now() - h0;
    }
    if (runFirst) {
      const r0 = performance.now();
      const { firstMs, code } = await runTrueGrpc(clients, id, signal);
      const r1 = performance.now();
      if (code !== 0) throw new Error(`daemon: true exited with ${code}`);
      samples.add("first_run_first_msg_ms", firstMs - r0);
      samples.add("first_run_ms", r1 - r0);
    }
    const k0 = performance.now();
    await clients.sandbox.remove({ id, force: true }, { signal });
    removed = true;
    const k1 = performance.now();
    samples.add("remove_ms", k1 - k0);
    samples.add("total_ms", k1 - t0 - untimedMs);
  } finally {
    signal.removeEventListener("abort", onAbort);
    sub.abort();
    if (created && !removed) {
      await clients.sandbox
        .remove({ id, force: true }, { timeoutMs: 30_000 })
        .catch((err: unknown) => {
          if (ConnectError.from(err).code !== Code.NotFound) throw err;
        });
    }
  }
}

import type { Interceptor } from "@connectrpc/connect";
import type { SandboxUsage } from "@vmm/core";
import { SANDBOX_STATES } from "@vmm/proto/wire";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetricsSource } from "./metrics-source.js";
import { ProcessStatSampler, type SampledProcess } from "./process-stat-sampler.js";
import { createRpcMetricsInterceptor } from "./rpc-metrics.js";
import { RuntimeMetrics } from "./runtime-metrics.js";
import { renderSandboxSeries } from "./sandbox-series.js";

/** The daemon's Prometheus metrics (docs/operations.md lists each). */
export interface VmmMetrics {
  /** Counts and times every RPC; first in the connect interceptor list of every listener. */
  readonly rpcInterceptor: Interceptor;
  /** One scrape: reads the live sandboxes once, then renders every metric. */
  scrape(): Promise<{ contentType: string; body: string }>;
  /** Stops observing the backend (daemon shutdown). */
  close(): void;
}

/** How old a sandbox's memory and CPU figures, and the daemon's own process metrics, may be in a scrape, ms. */
const STATS_INTERVAL_MS = 1000;
/** Background sampling stops after this long without a scrape, ms (Prometheus' default interval is 1 min). */
const STATS_IDLE_AFTER_MS = 5 * 60_000;
/** Seconds; RPCs range from sub-millisecond (Inspect) to long streams (Events, Exec land in +Inf). */
const RPC_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Seconds; golden and restore paths take tens of ms, a cold boot up to seconds. */
const CREATE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Builds the metrics over `source` in a registry of their own (never
 * prom-client's global one, so two daemons in one process do not mix).
 *
 * Per-sandbox series are written on every scrape from the live sandboxes
 * (renderSandboxSeries): a removed sandbox's series are simply not written
 * again. Memory and CPU time of each sandbox's process come from a sample
 * taken in the background once a second while the daemon is being scraped
 * (ProcessStatSampler), so a scrape reads nothing from disk except for
 * sandboxes new since the last sample; the daemon's own process metrics are
 * rendered on the same schedule (RuntimeMetrics).
 */
export function createVmmMetrics(source: MetricsSource): VmmMetrics {
  const registry = new Registry();
  const runtime = new RuntimeMetrics({
    intervalMs: STATS_INTERVAL_MS,
    idleAfterMs: STATS_IDLE_AFTER_MS,
  });

  // The sandboxes the collectors of one scrape read (taken in scrape()).
  let now: readonly SandboxUsage[] = [];

  new Gauge({
    name: "vmm_sandboxes",
    help: "Sandboxes by state (every state listed, 0 when none).",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(SANDBOX_STATES.map((s) => [s, 0]));
      for (const s of now) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: "vmm_network_slots",
    help: 'Network namespaces (mode tap) by state: "ready" = pre-created in the pool, "in_use" = held by a sandbox.',
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const n = source.pools().network;
      this.set({ state: "ready" }, n.ready);
      this.set({ state: "in_use" }, n.inUse);
    },
  });
  new Gauge({
    name: "vmm_network_slots_pool_target",
    help: "Network namespaces the pool keeps ready (network.pool_size; 0 in mode none).",
    registers: [registry],
    collect() {
      this.set(source.pools().network.target);
    },
  });
  new Gauge({
    name: "vmm_spare_clones",
    help: "Rootfs clones made ahead of time and ready to be handed out (storage.spare_clones).",
    registers: [registry],
    collect() {
      this.set(source.pools().spareClones);
    },
  });
  new Gauge({
    name: "vmm_golden_snapshots",
    help: "Golden snapshots on disk ([golden]).",
    registers: [registry],
    collect() {
      this.set(source.pools().goldenSnapshots);
    },
  });

  const rpcRequests = new Counter({
    name: "vmm_rpc_requests_total",
    help: 'RPCs finished, by method ("sandbox.v1.SandboxService/Create") and gRPC code ("ok", "not_found", "canceled"…); streams count when they end.',
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const rpcDuration = new Histogram({
    name: "vmm_rpc_duration_seconds",
    help: "RPC duration by method, seconds: until the answer for unary calls, until the stream ended for streaming ones.",
    labelNames: ["method"],
    buckets: RPC_BUCKETS,
    registers: [registry],
  });
  const createDuration = new Histogram({
    name: "vmm_sandbox_create_duration_seconds",
    help: 'Create/Restore call to state ready, seconds, by path: "boot" (cold boot), "golden" (restored from a golden snapshot), "restore" (Restore RPC).',
    labelNames: ["path"],
    buckets: CREATE_BUCKETS,
    registers: [registry],
  });
  const createFailures = new Counter({
    name: "vmm_sandbox_create_failures_total",
    help: "Creates/Restores that failed after the sandbox was registered (boot or restore failed, timed out), by path.",
    labelNames: ["path"],
    registers: [registry],
  });
  for (const path of ["boot", "golden", "restore"]) {
    createDuration.zero({ path });
    createFailures.inc({ path }, 0);
  }

  let scraping: Promise<void> = Promise.resolve();
  const procs = new ProcessStatSampler({
    processes: () => processesOf(source.sandboxes()),
    intervalMs: STATS_INTERVAL_MS,
    idleAfterMs: STATS_IDLE_AFTER_MS,
  });
  const stopObserving = source.observeCreates((o) => {
    if (o.ok) createDuration.observe({ path: o.path }, o.durationMs / 1000);
    else createFailures.inc({ path: o.path });
  });

  return {
    rpcInterceptor: createRpcMetricsInterceptor((method, code, seconds) => {
      rpcRequests.inc({ method, code });
      rpcDuration.observe({ method }, seconds);
    }),
    scrape() {
      // One at a time: the collectors of a scrape all read `now`.
      const result = scraping.then(render, render);
      scraping = result.then(
        () => {},
        () => {},
      );
      return result;
    },
    close() {
      stopObserving();
      procs.close();
      runtime.close();
    },
  };

  async function render(): Promise<{ contentType: string; body: string }> {
    const sandboxes = source.sandboxes();
    const stats = procs.stats(processesOf(sandboxes));
    now = sandboxes;
    const ours = await registry.metrics();
    return {
      contentType: registry.contentType,
      body: `${await runtime.text()}${ours}${ours.endsWith("\n") ? "" : "\n"}${renderSandboxSeries(sandboxes, stats)}`,
    };
  }
}

/** The Firecracker process of each sandbox, keyed by sandbox id. */
function processesOf(sandboxes: readonly SandboxUsage[]): SampledProcess[] {
  return sandboxes.map((s) => ({ key: s.id, pid: s.pid }));
}

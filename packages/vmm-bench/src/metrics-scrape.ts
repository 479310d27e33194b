/**
 * `vmm-bench metrics`: how long a Prometheus scrape of the ops HTTP listener
 * takes with many sandboxes, against /healthz on the same connection as the
 * baseline (what the HTTP round trip alone costs).
 */
import * as http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchOptions, runStart } from "./commands.js";
import { connectDaemon, opsAddressFromLog } from "./daemon.js";
import {
  createFleet,
  type FleetOptions,
  killUnder,
  leftovers,
  loadReport,
  removeFleet,
  startFleetDaemon,
  type TargetCheck,
} from "./fleet.js";
import type { BenchReport } from "./report.js";
import { percentile, roundMs, Samples } from "./stats.js";

/** One GET on a kept-alive connection: wall time (ms, first byte sent → last byte read) and body bytes. */
function timedGet(
  agent: http.Agent,
  base: string,
  path: string,
): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get(`${base}${path}`, { agent }, (res) => {
      let bytes = 0;
      res.on("data", (b: Buffer) => {
        bytes += b.length;
      });
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode}`));
        else resolve({ ms: performance.now() - started, bytes });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** Scrapes /metrics and /healthz alternately (ABAB), `n` times each, into `samples` under `tag`. */
async function measure(
  agent: http.Agent,
  base: string,
  n: number,
  tag: string,
  samples: Samples,
  signal: AbortSignal,
): Promise<{ bytes: number; series: number }> {
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    signal.throwIfAborted();
    samples.add(`healthz_${tag}`, (await timedGet(agent, base, "/healthz")).ms);
    const m = await timedGet(agent, base, "/metrics");
    samples.add(`metrics_${tag}`, m.ms);
    bytes = m.bytes;
  }
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get(`${base}/metrics`, { agent }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => resolve(text));
      })
      .on("error", reject);
  });
  const series = body.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
  return { bytes, series };
}

/** The metrics benchmark: 0 sandboxes, then `f.sandboxes`, each with `o.iterations` scrapes. */
export async function metricsCommand(o: BenchOptions, f: FleetOptions): Promise<BenchReport> {
  const start = runStart();
  const d = await startFleetDaemon(o, f, { opsHttp: true });
  const clients = connectDaemon(d.socket);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ids: string[] = [];
  const samples = new Samples();
  const sizes: Record<string, { bytes: number; series: number }> = {};
  let left: ReturnType<typeof leftovers>;
  try {
    const addr = opsAddressFromLog(d.stderr());
    if (addr === undefined) throw new Error("the daemon logged no ops HTTP listener address");
    const base = `http://${addr}`;
    // Warm: code paths compiled, the connection open (not measured).
    await measure(agent, base, o.warmup + 5, "warmup", new Samples(), o.signal);
    sizes.empty = await measure(agent, base, o.iterations, "0", samples, o.signal);
    await createFleet(clients, f.sandboxes, f.createBatch, o.signal, ids);
    await sleep(500); // the creates' background work (spare clones, records) settles
    await measure(agent, base, o.warmup + 5, "warmup", new Samples(), o.signal);
    sizes.full = await measure(agent, base, o.iterations, `${f.sandboxes}`, samples, o.signal);
  } finally {
    agent.destroy();
    await removeFleet(clients, ids).catch(() => {});
    clients.close();
    await d.stop();
    left = leftovers(d.dir);
    if (left.processes.length > 0) killUnder(d.dir);
  }
  const full = [...samples.get(`metrics_${f.sandboxes}`)].sort((a, b) => a - b);
  const base = [...samples.get(`healthz_${f.sandboxes}`)].sort((a, b) => a - b);
  const p99 = roundMs(percentile(full, 99));
  const p50 = roundMs(percentile(full, 50));
  const targets: Record<string, TargetCheck> = {
    [`scrape_p99_ms_${f.sandboxes}_sandboxes`]: { value: p99, target: "<= 10", met: p99 <= 10 },
  };
  return loadReport(
    "metrics",
    start,
    o,
    f,
    {},
    samples,
    [
      "ops HTTP listener on 127.0.0.1 (no token), one kept-alive HTTP/1.1 connection; GET /healthz and GET /metrics alternately (ABAB), wall time from request sent to last body byte",
      "healthz_* is the baseline: the HTTP round trip and the daemon's request handling without any metric work",
      `metrics_0 with no sandbox (default process metrics and the daemon's own); metrics_${f.sandboxes} with ${f.sandboxes} ready sandboxes (one /proc/<pid>/stat read each per scrape)`,
    ],
    {
      scrape: {
        p50Ms: p50,
        p99Ms: p99,
        healthzP50Ms: roundMs(percentile(base, 50)),
        healthzP99Ms: roundMs(percentile(base, 99)),
        bytes: sizes.full?.bytes,
        series: sizes.full?.series,
        emptyBytes: sizes.empty?.bytes,
        emptySeries: sizes.empty?.series,
      },
      targets,
      leftovers: left,
    },
  );
}

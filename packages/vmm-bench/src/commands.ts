import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentClient, AgentFiles } from "@vmm/core";
import { connectDaemon, type DaemonClients, type DaemonProcess, startDaemon } from "./daemon.js";
import { connectGrpcJs } from "./grpc-js-run.js";
import { backendInfo, hostInfo, loadAverages } from "./host.js";
import { daemonIteration, runTrueGrpc, waitReadyEvent } from "./lifecycle.js";
import { AGENT_PORT, rawIteration, rawRestoreIteration, runTrueDirect } from "./raw.js";
import type { BackendInfo, BenchReport, PhaseRatio } from "./report.js";
import { SCHEMA } from "./report.js";
import { type PhaseStats, ratio, roundMs, Samples } from "./stats.js";

/** Options shared by every command (parsed in main.ts). */
export interface BenchOptions {
  readonly iterations: number;
  readonly warmup: number;
  /** Pause before each iteration of an interleaved comparison, ms. */
  readonly settleMs: number;
  readonly concurrency: number;
  /** Absolute path of firecracker/fc-sim; null with --socket and no --firecracker. */
  readonly firecracker: string | null;
  readonly readiness: "agent" | "vmm";
  readonly kernel: string;
  readonly rootfs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  /** Use this running daemon instead of starting one. */
  readonly socket?: string | undefined;
  /** data_dir of the daemon at --socket (run-latency needs it). */
  readonly dataDir?: string | undefined;
  readonly signal: AbortSignal;
}

/** The daemon rejected a snapshot RPC as UNIMPLEMENTED (exit 3). */
export class UnimplementedRpcError extends Error {
  constructor(rpc: string, options?: ErrorOptions) {
    super(
      `the daemon answers ${rpc} with UNIMPLEMENTED: the snapshot RPCs are not available in this build`,
      options,
    );
    this.name = new.target.name;
  }
}

/** A daemon the bench talks to: its own (stopped at the end) or one at --socket. */
export interface DaemonHandle extends AsyncDisposable {
  readonly clients: DaemonClients;
  /** The daemon's Unix socket. */
  readonly socket: string;
  readonly dataDir: string | undefined;
  readonly process: DaemonProcess | undefined;
}

export async function openDaemon(
  o: BenchOptions,
  extra: { golden?: boolean; network?: readonly string[]; images?: readonly string[] } = {},
): Promise<DaemonHandle> {
  if (o.socket !== undefined) {
    const clients = connectDaemon(o.socket);
    return {
      clients,
      socket: o.socket,
      dataDir: o.dataDir,
      process: undefined,
      [Symbol.asyncDispose]: async () => clients.close(),
    };
  }
  if (o.firecracker === null) throw new Error("no firecracker binary to start a daemon with");
  const proc = await startDaemon({
    firecracker: o.firecracker,
    readiness: o.readiness,
    ...(extra.golden !== undefined && { golden: extra.golden }),
    ...(extra.network !== undefined && { network: extra.network }),
    ...(extra.images !== undefined && { images: extra.images }),
    kernel: o.kernel,
    rootfs: o.rootfs,
    vcpus: o.vcpus,
    memoryMib: o.memoryMib,
  });
  const clients = connectDaemon(proc.socket);
  return {
    clients,
    socket: proc.socket,
    dataDir: proc.dataDir,
    process: proc,
    async [Symbol.asyncDispose]() {
      clients.close();
      await proc.stop();
    },
  };
}

const runTag = process.pid.toString(36);
let seq = 0;
/** A fresh sandbox/VM id: [a-z0-9-], short (socket path limit). */
export function nextId(prefix: string): string {
  return `${prefix}${runTag}-${(seq++).toString(36)}`;
}

export function commonParams(o: BenchOptions): Record<string, unknown> {
  return {
    iterations: o.iterations,
    warmup: o.warmup,
    settleMs: o.settleMs,
    readiness: o.readiness,
    vcpus: o.vcpus,
    memoryMib: o.memoryMib,
    kernel: o.kernel,
    rootfs: o.rootfs,
    network: "none",
    ...(o.socket !== undefined && { socket: o.socket }),
  };
}

export function backendNotes(b: BackendInfo, readiness: "agent" | "vmm"): string[] {
  const notes: string[] = [];
  if (b.simulated) {
    notes.push(
      "backend is fc-sim (a Node process simulating Firecracker; the guest agent runs as a host process): its spawn cost dominates and the numbers say nothing about microVM boot time",
    );
  }
  if (readiness === "vmm") {
    notes.push(
      "readiness vmm: ready = InstanceStart returned; the guest agent is not awaited and Run is skipped (first_run_* phases absent)",
    );
  }
  return notes;
}

/** When a run started: the date and the host's load averages then. */
export interface RunStart {
  readonly at: Date;
  readonly load: readonly number[];
}

export function runStart(): RunStart {
  return { at: new Date(), load: loadAverages() };
}

/** Assembles the vmm-bench/1 document of one run. */
export function report(
  command: string,
  date: RunStart,
  backend: BackendInfo,
  params: Record<string, unknown>,
  phases: Record<string, PhaseStats>,
  notes: string[],
  extra: Partial<Pick<BenchReport, "ratios">> & Record<string, unknown> = {},
): BenchReport {
  return {
    schema: SCHEMA,
    command,
    date: date.at.toISOString(),
    host: hostInfo(date.load),
    backend,
    params,
    phases,
    ...extra,
    notes,
  };
}

export function prefixed(
  prefix: string,
  phases: Record<string, PhaseStats>,
): Record<string, PhaseStats> {
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [`${prefix}.${k}`, v]));
}

export function ratios(
  a: Record<string, PhaseStats>,
  b: Record<string, PhaseStats>,
): Record<string, PhaseRatio> {
  const out: Record<string, PhaseRatio> = {};
  for (const [k, sa] of Object.entries(a)) {
    const sb = b[k];
    if (!sb) continue;
    out[k] = { p50: ratio(sa.p50, sb.p50) ?? null, mean: ratio(sa.mean, sb.mean) ?? null };
  }
  return out;
}

// ── lifecycle ──────────────────────────────────────────────────────────────

export async function lifecycleCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const samples = new Samples();
  const runFirst = o.readiness === "agent";
  await using d = await openDaemon(o);
  for (let i = 0; i < o.warmup; i++) {
    await daemonIteration(d.clients, nextId("w"), runFirst, new Samples(), o.signal);
  }
  let next = 0;
  const worker = async () => {
    while (next < o.iterations) {
      next++;
      o.signal.throwIfAborted();
      await daemonIteration(d.clients, nextId("b"), runFirst, samples, o.signal);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
  const wallMs = performance.now() - t0;
  const notes = [
    ...backendNotes(backend, o.readiness),
    "create_to_ready_ms: Create call start → the sandbox's ready event (Events filtered by id, subscribed before Create)",
    "remove_ms: Remove with force=true (SIGKILL, no graceful Ctrl-Alt-Del), like raw's kill",
  ];
  return report(
    "lifecycle",
    date,
    backend,
    { ...commonParams(o), concurrency: o.concurrency, wallMs: roundMs(wallMs) },
    samples.summarize(),
    notes,
  );
}

// ── raw ────────────────────────────────────────────────────────────────────

function rawOptions(o: BenchOptions, baseDir: string) {
  if (o.firecracker === null) throw new Error("raw needs --firecracker");
  return {
    firecracker: o.firecracker,
    readiness: o.readiness,
    kernel: o.kernel,
    rootfs: o.rootfs,
    vcpus: o.vcpus,
    memoryMib: o.memoryMib,
    baseDir,
  };
}

const RAW_NOTES = [
  "raw: mkdir, rootfs clone (auto: reflink else copy, as the daemon), spawn with cwd = dir, PUT machine-config/boot-source/drives/vsock/actions over plain node:http with the daemon's relative paths and boot args (+ vmm.agent_port=1024), then AgentClient health over the vsock UDS (CONNECT 1024); remove = SIGKILL + wait + rm -rf",
];

export async function rawCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const samples = new Samples();
  const baseDir = mkdtempSync("/tmp/vr-");
  try {
    const ro = rawOptions(o, baseDir);
    for (let i = 0; i < o.warmup; i++) await rawIteration(ro, nextId("w"), new Samples(), o.signal);
    for (let i = 0; i < o.iterations; i++) {
      o.signal.throwIfAborted();
      await rawIteration(ro, nextId("r"), samples, o.signal);
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
  return report("raw", date, backend, commonParams(o), samples.summarize(), [
    ...backendNotes(backend, o.readiness),
    ...RAW_NOTES,
  ]);
}

// ── compare ────────────────────────────────────────────────────────────────

export async function compareCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const daemonSamples = new Samples();
  const rawSamples = new Samples();
  const runFirst = o.readiness === "agent";
  const baseDir = mkdtempSync("/tmp/vr-");
  try {
    await using d = await openDaemon(o);
    const ro = rawOptions(o, baseDir);
    const viaDaemon = (s: Samples) =>
      daemonIteration(d.clients, nextId("b"), runFirst, s, o.signal);
    const viaRaw = (s: Samples) => rawIteration(ro, nextId("r"), s, o.signal);
    await interleave(
      [
        [viaDaemon, daemonSamples],
        [viaRaw, rawSamples],
      ],
      o,
    );
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
  const dp = daemonSamples.summarize();
  const rp = rawSamples.summarize();
  return report(
    "compare",
    date,
    backend,
    { ...commonParams(o), order: "ABAB (alternating first side)" },
    { ...prefixed("daemon", dp), ...prefixed("raw", rp) },
    [
      ...backendNotes(backend, o.readiness),
      "ratios are daemon/raw per phase (p50 and mean); both sides use the same binary, kernel, rootfs and boot args in one process",
      "daemon remove_ms uses Remove force=true",
      ...RAW_NOTES,
    ],
    { ratios: ratios(dp, rp) },
  );
}

// ── run-latency ────────────────────────────────────────────────────────────

export async function runLatencyCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  if (o.readiness !== "agent")
    throw new Error("run-latency needs --readiness agent (a guest agent to run in)");
  await using d = await openDaemon(o);
  if (d.dataDir === undefined)
    throw new Error("run-latency with --socket needs --data-dir (the daemon's data_dir)");
  const id = nextId("l");
  const sub = new AbortController();
  const ready = waitReadyEvent(d.clients, id, sub.signal);
  await d.clients.sandbox.create({ id, network: { mode: "none" } }, { signal: o.signal });
  const grpc = new Samples();
  const grpcjs = new Samples();
  const direct = new Samples();
  const gj = connectGrpcJs(d.socket);
  try {
    await ready;
    sub.abort();
    const agent = new AgentClient({
      endpoint: {
        kind: "vsock",
        udsPath: join(d.dataDir, "sandboxes", id, "vsock.sock"),
        port: AGENT_PORT,
      },
    });
    const viaGrpc = async (s: Samples) => {
      const t0 = performance.now();
      const { firstMs, code } = await runTrueGrpc(d.clients, id, o.signal);
      const t1 = performance.now();
      if (code !== 0) throw new Error(`gRPC Run true exited with ${code}`);
      s.add("first_msg_ms", firstMs - t0);
      s.add("run_ms", t1 - t0);
    };
    const viaGrpcJs = async (s: Samples) => {
      const t0 = performance.now();
      const { firstMs, code } = await gj.runTrue(id, o.signal);
      const t1 = performance.now();
      if (code !== 0) throw new Error(`grpc-js Run true exited with ${code}`);
      s.add("first_msg_ms", firstMs - t0);
      s.add("run_ms", t1 - t0);
    };
    const viaDirect = async (s: Samples) => {
      const t0 = performance.now();
      const { firstMs, code } = await runTrueDirect(agent, o.signal);
      const t1 = performance.now();
      if (code !== 0) throw new Error(`direct run of true exited with ${code}`);
      s.add("first_msg_ms", firstMs - t0);
      s.add("run_ms", t1 - t0);
    };
    await interleave(
      [
        [viaGrpc, grpc],
        [viaDirect, direct],
        [viaGrpcJs, grpcjs],
      ],
      {
        ...o,
        warmup: Math.max(o.warmup, 2),
        settleMs: 0, // back to back: both sides leave nothing running behind them
      },
    );
  } finally {
    sub.abort();
    gj.close();
    await d.clients.sandbox.remove({ id, force: true }, { timeoutMs: 30_000 }).catch(() => {});
  }
  const gp = grpc.summarize();
  const jp = grpcjs.summarize();
  const dp = direct.summarize();
  const dr = dp.run_ms!;
  const minus = (g: PhaseStats) => ({
    p50: roundMs(g.p50 - dr.p50),
    p95: roundMs(g.p95 - dr.p95),
    p99: roundMs(g.p99 - dr.p99),
    mean: roundMs(g.mean - dr.mean),
  });
  return report(
    "run-latency",
    date,
    backend,
    commonParams(o),
    { ...prefixed("grpc", gp), ...prefixed("grpcjs", jp), ...prefixed("direct", dp) },
    [
      ...backendNotes(backend, o.readiness),
      "grpc: Run {cmd: [true]} through the daemon until done, with @connectrpc/connect-node's gRPC transport (what the vmm CLI uses); grpcjs: the same call with @grpc/grpc-js; direct: AgentClient.run(true) on <data_dir>/sandboxes/<id>/vsock.sock (CONNECT 1024, a new connection per call) until exit; same sandbox, the three interleaved with a rotating order",
      "the daemon keeps one agent connection dialed and greeted ahead per sandbox (AgentClient spareConnection); the direct side dials per call, as a plain client does",
      "differences.run_ms = grpc - direct, differences.run_ms_grpcjs = grpcjs - direct, per statistic (target: within 2 ms)",
    ],
    {
      ratios: ratios(gp, dp),
      differences: { run_ms: minus(gp.run_ms!), run_ms_grpcjs: minus(jp.run_ms!) },
    },
  );
}

// ── startup ────────────────────────────────────────────────────────────────

export async function startupCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  if (o.socket !== undefined)
    throw new Error("startup starts its own daemons; --socket makes no sense here");
  if (o.firecracker === null) throw new Error("startup needs a firecracker binary");
  const backend = backendInfo(o.firecracker);
  const samples = new Samples();
  const start = () =>
    startDaemon({
      firecracker: o.firecracker as string,
      readiness: o.readiness,
      kernel: o.kernel,
      rootfs: o.rootfs,
      vcpus: o.vcpus,
      memoryMib: o.memoryMib,
    });
  for (let i = 0; i < o.warmup; i++) await (await start()).stop();
  for (let i = 0; i < o.iterations; i++) {
    o.signal.throwIfAborted();
    const p = await start();
    samples.add("startup_ms", p.healthyAt - p.spawnedAt);
    const s0 = performance.now();
    await p.stop();
    samples.add("shutdown_ms", performance.now() - s0);
  }
  return report(
    "startup",
    date,
    backend,
    { iterations: o.iterations, warmup: o.warmup },
    samples.summarize(),
    [
      "startup_ms: spawn of node vmm-daemon.mjs (fresh config, socket and data dir each time) → first grpc.health.v1.Health/Check answering SERVING (polled every ~1 ms, a fresh connection per attempt); target < 300 ms",
      "shutdown_ms: SIGTERM → process exit (+ removing its temp dir), no sandboxes",
    ],
  );
}

// ── restore ────────────────────────────────────────────────────────────────

function unimplemented(rpc: string, err: unknown): never {
  if (ConnectError.from(err).code === Code.Unimplemented)
    throw new UnimplementedRpcError(rpc, { cause: err });
  throw err;
}

async function createReady(
  d: DaemonHandle,
  id: string,
  memoryMib: number,
  signal: AbortSignal,
): Promise<void> {
  const sub = new AbortController();
  try {
    const ready = waitReadyEvent(d.clients, id, sub.signal);
    await d.clients.sandbox.create(
      { id, network: { mode: "none" }, limits: { memoryMib: BigInt(memoryMib) } },
      { signal },
    );
    await ready;
  } finally {
    sub.abort();
  }
}

export async function restoreCommand(
  o: BenchOptions,
  checkpointIterations: number,
): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  if (o.readiness !== "agent")
    throw new Error("restore needs --readiness agent (Run after restore)");
  await using d = await openDaemon(o);
  const samples = new Samples();
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    // Checkpoint once, untimed.
    const origin = nextId("o");
    await createReady(d, origin, o.memoryMib, o.signal);
    cleanup.push(() => d.clients.sandbox.remove({ id: origin, force: true }));
    const snap = await d.clients.snapshot
      .checkpoint({ sandboxId: origin, name: "bench" }, { signal: o.signal })
      .catch((err: unknown) => unimplemented("Checkpoint", err));
    cleanup.push(() => d.clients.snapshot.deleteSnapshot({ snapshotId: snap.snapshotId }));
    const once = async (s: Samples) => {
      const id = nextId("x");
      const t0 = performance.now();
      await d.clients.snapshot
        .restore({ id, snapshotId: snap.snapshotId }, { signal: o.signal })
        .catch((err: unknown) => unimplemented("Restore", err));
      const t1 = performance.now();
      try {
        const { code } = await runTrueGrpc(d.clients, id, o.signal);
        const t2 = performance.now();
        if (code !== 0) throw new Error(`Run true after restore exited with ${code}`);
        s.add("restore_to_ready_ms", t1 - t0);
        s.add("restore_to_first_run_ms", t2 - t0);
      } finally {
        await d.clients.sandbox.remove({ id, force: true }, { timeoutMs: 30_000 });
      }
    };
    for (let i = 0; i < o.warmup; i++) await once(new Samples());
    for (let i = 0; i < o.iterations; i++) {
      o.signal.throwIfAborted();
      await once(samples);
    }
    // Checkpoint time by guest size.
    for (const mib of [128, 1024]) {
      const id = nextId("c");
      await createReady(d, id, mib, o.signal);
      try {
        for (let i = 0; i < checkpointIterations; i++) {
          const t0 = performance.now();
          const r = await d.clients.snapshot.checkpoint({ sandboxId: id }, { signal: o.signal });
          samples.add(`checkpoint_${mib}mib_ms`, performance.now() - t0);
          await d.clients.snapshot.deleteSnapshot({ snapshotId: r.snapshotId });
        }
      } finally {
        await d.clients.sandbox.remove({ id, force: true }, { timeoutMs: 30_000 });
      }
    }
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  }
  return report(
    "restore",
    date,
    backend,
    { ...commonParams(o), checkpointIterations, checkpointGuestsMib: [128, 1024] },
    samples.summarize(),
    [
      ...backendNotes(backend, o.readiness),
      "restore_to_ready_ms: Restore call (ready when it returns); restore_to_first_run_ms: Restore start → Run true done",
      "checkpoint_<N>mib_ms: Checkpoint of a ready guest of N MiB (pause, full snapshot + disk copy, resume); each snapshot deleted untimed",
    ],
  );
}

// ── compare-restore ────────────────────────────────────────────────────────

export async function compareRestoreCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const runFirst = o.readiness === "agent";
  const daemonSamples = new Samples();
  const rawSamples = new Samples();
  const baseDir = mkdtempSync("/tmp/vr-");
  let snapshotDir = "";
  try {
    await using d = await openDaemon(o);
    const ro = rawOptions(o, baseDir);
    const cleanup: Array<() => Promise<unknown>> = [];
    try {
      // Checkpoint once through the daemon, untimed; the origin is removed at
      // once (a real VM whose guest cannot boot spins a core).
      const origin = nextId("o");
      await createReady(d, origin, o.memoryMib, o.signal);
      let snap: { snapshotId: string; snapshotDir: string };
      try {
        snap = await d.clients.snapshot
          .checkpoint({ sandboxId: origin, name: "bench" }, { signal: o.signal })
          .catch((err: unknown) => unimplemented("Checkpoint", err));
      } finally {
        await d.clients.sandbox
          .remove({ id: origin, force: true }, { timeoutMs: 30_000 })
          .catch(() => {});
      }
      cleanup.push(() => d.clients.snapshot.deleteSnapshot({ snapshotId: snap.snapshotId }));
      snapshotDir = snap.snapshotDir;
      const viaDaemon = async (s: Samples) => {
        const id = nextId("x");
        const t0 = performance.now();
        await d.clients.snapshot
          .restore({ id, snapshotId: snap.snapshotId }, { signal: o.signal })
          .catch((err: unknown) => unimplemented("Restore", err));
        const tReady = performance.now();
        let removed = false;
        try {
          s.add("restore_to_ready_ms", tReady - t0);
          if (runFirst) {
            const { code } = await runTrueGrpc(d.clients, id, o.signal);
            const r1 = performance.now();
            if (code !== 0) throw new Error(`Run true after restore exited with ${code}`);
            s.add("first_run_ms", r1 - tReady);
            s.add("restore_to_first_run_ms", r1 - t0);
          }
          const k0 = performance.now();
          await d.clients.sandbox.remove({ id, force: true }, { signal: o.signal });
          removed = true;
          s.add("remove_ms", performance.now() - k0);
        } finally {
          if (!removed) {
            await d.clients.sandbox
              .remove({ id, force: true }, { timeoutMs: 30_000 })
              .catch(() => {});
          }
        }
      };
      const viaRaw = (s: Samples) =>
        rawRestoreIteration(ro, snap.snapshotDir, nextId("r"), s, o.signal);
      await interleave(
        [
          [viaDaemon, daemonSamples],
          [viaRaw, rawSamples],
        ],
        o,
      );
    } finally {
      for (const f of cleanup.reverse()) await f().catch(() => {});
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }
  const dp = daemonSamples.summarize();
  const rp = rawSamples.summarize();
  return report(
    "compare-restore",
    date,
    backend,
    { ...commonParams(o), order: "ABAB (alternating first side)", snapshotDir },
    { ...prefixed("daemon", dp), ...prefixed("raw", rp) },
    [
      ...backendNotes(backend, o.readiness),
      "one snapshot, taken once through the daemon's Checkpoint (untimed) of a ready guest; both sides restore it",
      "daemon: Restore {id, snapshot_id} (returns when ready); raw: mkdir, hard-link vmstate and mem, clone rootfs.ext4 (createDiskCloner auto), spawn with cwd = dir, PUT /snapshot/load {snapshot_path: vmstate, mem_backend File mem, resume_vm: true}" +
        (runFirst ? ", then AgentClient.waitReady on vsock.sock" : "; ready = the load returned"),
      ...(runFirst
        ? [
            "first_run_ms: ready → Run true done (gRPC Run vs AgentClient.run); restore_to_first_run_ms: restore start → that",
          ]
        : []),
      "remove_ms: daemon Remove force=true vs raw SIGKILL + wait + rm -rf",
      "ratios are daemon/raw per phase (p50 and mean); target restore_to_ready_ms <= 1.10",
    ],
    { ratios: ratios(dp, rp) },
  );
}

// ── golden ─────────────────────────────────────────────────────────────────

/** Waits until the daemon logs that the golden snapshot of its defaults is ready. */
async function waitGoldenReady(d: DaemonHandle, signal: AbortSignal, timeoutMs = 180_000) {
  const p = d.process;
  if (!p) throw new Error("golden needs a daemon started by the bench");
  const t0 = performance.now();
  for (;;) {
    signal.throwIfAborted();
    const log = p.stderr();
    if (log.includes("golden snapshot ready")) return performance.now() - t0;
    if (/golden snapshot (build failed|of the defaults not started)/.test(log))
      throw new Error(`the daemon could not build its golden snapshot:\n${log}`);
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`no "golden snapshot ready" after ${timeoutMs} ms:\n${log}`);
    await sleep(20);
  }
}

export async function goldenCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  if (o.socket !== undefined)
    throw new Error(
      "golden starts its own two daemons (golden off and on); --socket makes no sense here",
    );
  const backend = backendInfo(o.firecracker);
  const runFirst = o.readiness === "agent";
  const bootSamples = new Samples();
  const goldenSamples = new Samples();
  const checked = { boot: 0, golden: 0 };
  let goldenBuildMs = 0;
  {
    await using off = await openDaemon(o, { golden: false });
    await using on = await openDaemon(o, { golden: true });
    goldenBuildMs = await waitGoldenReady(on, o.signal);
    const expectFrom =
      (h: DaemonHandle, want: "boot" | "golden", count: boolean) => async (id: string) => {
        const info = await h.clients.sandbox.inspect({ id }, { signal: o.signal });
        if (info.createdFrom !== want)
          throw new Error(
            `sandbox ${id} was created from "${info.createdFrom}", expected "${want}"`,
          );
        if (count) checked[want]++;
      };
    const viaBoot = (s: Samples, count: boolean) =>
      daemonIteration(
        off.clients,
        nextId("b"),
        runFirst,
        s,
        o.signal,
        expectFrom(off, "boot", count),
      );
    const viaGolden = (s: Samples, count: boolean) =>
      daemonIteration(
        on.clients,
        nextId("g"),
        runFirst,
        s,
        o.signal,
        expectFrom(on, "golden", count),
      );
    await interleave(
      [
        [viaBoot, bootSamples],
        [viaGolden, goldenSamples],
      ],
      o,
    );
  }
  const bp = bootSamples.summarize();
  const gp = goldenSamples.summarize();
  const speedup: Record<string, Record<string, number | null>> = {};
  for (const [k, g] of Object.entries(gp)) {
    const b = bp[k];
    if (!b) continue;
    speedup[k] = {
      p50: ratio(b.p50, g.p50) ?? null,
      p95: ratio(b.p95, g.p95) ?? null,
      p99: ratio(b.p99, g.p99) ?? null,
      mean: ratio(b.mean, g.mean) ?? null,
    };
  }
  return report(
    "golden",
    date,
    backend,
    {
      ...commonParams(o),
      order: "ABAB (alternating first side)",
      goldenBuildWaitMs: roundMs(goldenBuildMs),
      createdFromChecked: checked,
    },
    { ...prefixed("boot", bp), ...prefixed("golden", gp) },
    [
      ...backendNotes(backend, o.readiness),
      'two daemons with the same config but [golden] enabled = false (boot.*) and true (golden.*); the golden one is used only after it logged "golden snapshot ready" for the default spec (goldenBuildWaitMs after it served)',
      "each iteration: Events{id} subscribed, Create{id, network none} (the default spec) → ready event, then Inspect (untimed, excluded from total_ms) asserts created_from = boot resp. golden for every timed create (createdFromChecked counts them)",
      "ratios are golden/boot (p50, mean); speedup is boot/golden per statistic",
      "remove_ms: Remove force=true",
    ],
    { ratios: ratios(gp, bp), speedup },
  );
}

/** One side of an interleaved comparison: how to run an iteration, and where its samples go. */
// ── policy ─────────────────────────────────────────────────────────────────

/** The policy both policy-bench sides use: internet off, 16 CIDRs allowed, 4 denied. */
const BENCH_POLICY = {
  internet: false,
  allowOut: Array.from({ length: 16 }, (_, i) => `10.${100 + i}.0.0/16`),
  denyOut: ["10.100.1.0/24", "10.101.2.0/24", "192.0.2.7", "198.51.100.0/24"],
};

/**
 * Egress policy cost: Create with a policy vs without (interleaved; Create
 * answers once the slot is taken and, with a policy, its nft table loaded), and
 * UpdateNetworkPolicy latency on a ready sandbox. Needs root: the daemon runs
 * network mode tap with its "host" side in a namespace made (and deleted) here.
 */
export async function policyCommand(o: BenchOptions): Promise<BenchReport> {
  if (process.getuid?.() !== 0) throw new Error("policy needs root (network mode tap)");
  if (o.socket !== undefined) throw new Error("policy starts its own daemon (no --socket)");
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const tag = `vb${process.pid.toString(36).slice(-4)}`;
  const hostNetns = `${tag}host`;
  const run = (args: string[]) => execFileSync("ip", args, { stdio: "ignore" });
  run(["netns", "add", hostNetns]);
  const createSamples = new Samples();
  const withSamples = new Samples();
  const update = new Samples();
  // The pool refills in the background after each Remove: settle so a Create finds a ready slot.
  const settleMs = Math.max(o.settleMs, 300);
  try {
    await using d = await openDaemon(o, {
      network: [
        'mode = "tap"',
        'host_cidr = "10.238.0.0/24"',
        `netns_prefix = "${tag}-"`,
        `host_netns = "${hostNetns}"`,
        "pool_size = 8",
      ],
    });
    const sb = d.clients.sandbox;
    const createOnce = (policy: boolean) => async (s: Samples) => {
      const id = nextId("p");
      const t0 = performance.now();
      await sb.create({ id, ...(policy && { networkPolicy: BENCH_POLICY }) });
      s.add("create_rpc_ms", performance.now() - t0);
      await sb.remove({ id, force: true });
    };
    await interleave(
      [
        [createOnce(false), createSamples],
        [createOnce(true), withSamples],
      ],
      { ...o, settleMs },
    );
    const id = nextId("u");
    await sb.create({ id });
    await waitReady(sb, id);
    const policies = [
      BENCH_POLICY,
      { ...BENCH_POLICY, internet: true, denyOut: ["10.100.0.0/16"] },
    ];
    for (let i = 0; i < o.warmup + o.iterations; i++) {
      const t0 = performance.now();
      await sb.updateNetworkPolicy({ id, policy: policies[i % 2] });
      if (i >= o.warmup) update.add("update_network_policy_ms", performance.now() - t0);
    }
    await sb.remove({ id, force: true });
  } finally {
    execFileSync("sh", [
      "-c",
      `for n in $(ip netns list | awk '/^${tag}/{print $1}'); do ip netns del $n; done`,
    ]);
  }
  const without = createSamples.summarize();
  const withPolicy = withSamples.summarize();
  return report(
    "policy",
    date,
    backend,
    {
      ...commonParams(o),
      network: "tap",
      settleMs,
      policy: { internet: false, allowOut: 16, denyOut: 4 },
      order: "ABAB (alternating first side)",
    },
    { ...prefixed("no_policy", without), ...prefixed("policy", withPolicy), ...update.summarize() },
    [
      ...backendNotes(backend, o.readiness),
      "create_rpc_ms: the Create call alone (slot from the pool, directory, record; with a policy also its resolution and one `ip netns exec <slot> nft -f -` load), not the boot",
      "update_network_policy_ms: UpdateNetworkPolicy on a ready sandbox, alternating two policies (each a full atomic table replacement)",
      "the daemon's host side is a private namespace; no root-namespace rule is touched",
    ],
    { ratios: ratios(withPolicy, without) },
  );
}

export async function waitReady(sb: DaemonClients["sandbox"], id: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const info = await sb.inspect({ id });
    if (info.state === "ready") return;
    if (info.state === "failed") throw new Error(`${id} failed: ${info.error}`);
    await sleep(50);
  }
  throw new Error(`${id} not ready after 30 s`);
}

export type Side = readonly [
  run: (samples: Samples, timed: boolean) => Promise<unknown>,
  samples: Samples,
];

/**
 * Runs `warmup` untimed rounds of every side, then `iterations` timed rounds, the order
 * rotated every round so no side always runs first (on a warmer or colder cache). Each
 * iteration starts `settleMs` after the previous one ended, so work one side leaves running
 * in the background (the kernel freeing a killed VM's memory, the daemon making a spare
 * rootfs) is not billed to another.
 */
export async function interleave(
  sides: readonly Side[],
  o: { warmup: number; iterations: number; settleMs: number; signal: AbortSignal },
): Promise<void> {
  const run = async (side: Side, samples: Samples, timed: boolean) => {
    if (o.settleMs > 0) await sleep(o.settleMs);
    await side[0](samples, timed);
  };
  for (let i = 0; i < o.warmup; i++)
    for (const side of sides) await run(side, new Samples(), false);
  for (let i = 0; i < o.iterations; i++) {
    o.signal.throwIfAborted();
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(i + k) % sides.length]!;
      await run(side, side[1], true);
    }
  }
}

// ── files ──────────────────────────────────────────────────────────────────

/** Size of each file `vmm-bench files` moves, bytes. */
const FILES_BENCH_BYTES = 100 * 1024 * 1024;
const FILES_CHUNK_BYTES = 1024 * 1024;

function* chunksOf(total: number, block: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < total; off += block.length) {
    yield block.subarray(0, Math.min(block.length, total - off));
  }
}

async function* asyncChunks(total: number, block: Uint8Array): AsyncGenerator<Uint8Array> {
  yield* chunksOf(total, block);
}

/**
 * Upload and download MB/s of a 100 MB file through SandboxFilesService
 * (gRPC over the daemon's Unix socket) against the same transfers straight
 * to the sandbox's agent (AgentFiles on its vsock socket, no daemon), and
 * Watch latency (a file created by Run → its event at the client).
 */
export async function filesCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  if (o.readiness !== "agent") throw new Error("files needs --readiness agent");
  await using d = await openDaemon(o);
  if (d.dataDir === undefined) throw new Error("files with --socket needs --data-dir");
  const id = nextId("f");
  const sub = new AbortController();
  const ready = waitReadyEvent(d.clients, id, sub.signal);
  await d.clients.sandbox.create({ id, network: { mode: "none" } }, { signal: o.signal });
  const grpc = new Samples();
  const direct = new Samples();
  const watch = new Samples();
  const block = new Uint8Array(FILES_CHUNK_BYTES).map((_, i) => (i * 31) & 0xff);
  const mbps = (ms: number) => FILES_BENCH_BYTES / 1e6 / (ms / 1000);
  try {
    await ready;
    sub.abort();
    const files = new AgentFiles(
      new AgentClient({
        endpoint: {
          kind: "vsock",
          udsPath: join(d.dataDir, "sandboxes", id, "vsock.sock"),
          port: AGENT_PORT,
        },
      }),
    );
    // The guest's /tmp (tmpfs in fc-sim's disk guest): its 64 MiB rootfs has no room for 100 MB.
    const viaGrpc = async (s: Samples) => {
      const t0 = performance.now();
      await d.clients.files.writeFile(
        (async function* () {
          yield { payload: { case: "header" as const, value: { id, path: "/tmp/bench-g.bin" } } };
          for (const data of chunksOf(FILES_BENCH_BYTES, block))
            yield { payload: { case: "data" as const, value: data } };
        })(),
        { signal: o.signal },
      );
      const t1 = performance.now();
      let n = 0;
      for await (const c of d.clients.files.readFile(
        { id, path: "/tmp/bench-g.bin" },
        { signal: o.signal },
      ))
        n += c.data.length;
      const t2 = performance.now();
      if (n !== FILES_BENCH_BYTES) throw new Error(`gRPC download returned ${n} bytes`);
      s.add("upload_mb_s", mbps(t1 - t0));
      s.add("download_mb_s", mbps(t2 - t1));
    };
    const viaAgent = async (s: Samples) => {
      const t0 = performance.now();
      await files.writeFile(
        "/tmp/bench-d.bin",
        {},
        asyncChunks(FILES_BENCH_BYTES, block),
        o.signal,
      );
      const t1 = performance.now();
      let n = 0;
      // reuseChunks as the daemon's ReadFile: only lengths are kept.
      for await (const c of (
        await files.readFile("/tmp/bench-d.bin", { reuseChunks: true }, o.signal)
      ).chunks)
        n += c.length;
      const t2 = performance.now();
      if (n !== FILES_BENCH_BYTES) throw new Error(`direct download returned ${n} bytes`);
      s.add("upload_mb_s", mbps(t1 - t0));
      s.add("download_mb_s", mbps(t2 - t1));
    };
    await interleave(
      [
        [viaGrpc, grpc],
        [viaAgent, direct],
      ],
      { ...o, settleMs: 0 },
    );
    // Watch: a file created by Run, from its mtime (fc-sim's guest shares the host clock) to the event.
    const ac = new AbortController();
    await d.clients.files.makeDir(
      { id, path: "/tmp/bench-w", parents: true },
      { signal: o.signal },
    );
    const it = d.clients.files
      .watch({ id, path: "/tmp/bench-w" }, { signal: AbortSignal.any([ac.signal, o.signal]) })
      [Symbol.asyncIterator]();
    try {
      for (let i = 0; i < o.warmup + o.iterations; i++) {
        const name = `/tmp/bench-w/f${i}`;
        const run = (async () => {
          for await (const _ of d.clients.sandbox.run(
            { id, cmd: ["touch", name] },
            { signal: o.signal },
          ));
        })();
        let ev = await it.next();
        while (!ev.done && ev.value.path !== name) ev = await it.next();
        const arrived = BigInt(Date.now()) * 1_000_000n;
        await run;
        const st = await d.clients.files.stat({ id, path: name }, { signal: o.signal });
        if (i >= o.warmup) watch.add("event_latency_ms", Number(arrived - st.mtime) / 1e6);
      }
    } finally {
      ac.abort();
    }
  } finally {
    sub.abort();
    await d.clients.sandbox.remove({ id, force: true }, { timeoutMs: 30_000 }).catch(() => {});
  }
  const gp = grpc.summarize();
  const dp = direct.summarize();
  return report(
    "files",
    date,
    backend,
    { ...commonParams(o), fileBytes: FILES_BENCH_BYTES, chunkBytes: FILES_CHUNK_BYTES },
    { ...prefixed("grpc", gp), ...prefixed("direct", dp), ...prefixed("watch", watch.summarize()) },
    [
      ...backendNotes(backend, o.readiness),
      "*_mb_s phases are throughput in MB/s (10^6 bytes/s), not ms: higher is better; p50/p95/p99/mean over iterations",
      "grpc: WriteFile then ReadFile of a 100 MB file in the guest's /tmp through the daemon (connect-node gRPC over its Unix socket, 1 MiB messages); direct: AgentFiles (the daemon's own agent client) on <data_dir>/sandboxes/<id>/vsock.sock, the same agent without gRPC; interleaved ABAB on one sandbox",
      "watch.event_latency_ms: Run touch in the watched dir; from the new file's mtime (guest = host clock in fc-sim) to the FILE_EVENT reaching this client",
    ],
    { ratios: ratios(gp, dp) },
  );
}

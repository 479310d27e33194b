/**
 * Startup recovery: what an earlier daemon left in `<data_dir>/sandboxes/`.
 *
 * Restart rules (docs/architecture.md "Restarts"):
 * - a record whose VM should be alive (starting, ready, running, stopping) and
 *   whose Firecracker still runs is re-adopted (see SandboxManager.recover for
 *   what each state becomes);
 * - one whose Firecracker is gone becomes `failed`, saying so, and stays
 *   listed until removed;
 * - `failed` and `stopped` records are kept as they are, across any number
 *   of restarts;
 * - a directory without a readable record (a Create cut short before its
 *   first write) is removed: no client ever saw it listed.
 *
 * `scanSandboxes` reads and sorts; `recoverSandboxes` re-registers and
 * re-adopts through the registry, the lifecycle and `MicroVm.adopt`.
 */
import { readFileSync, statSync } from "node:fs";
import type { Logger } from "../internal/index.js";
import type { NetworkSlot } from "../network/index.js";
import { SandboxDir } from "../storage/index.js";
import { MicroVm } from "../vm/microvm.js";
import { errorText, type SandboxContext } from "./context.js";
import type { SandboxLifecycle } from "./lifecycle.js";
import { Sandbox, type SandboxPhase } from "./sandbox.js";
import type { SandboxFactory } from "./sandbox-factory.js";
import { parseSandboxRecord, type SandboxRecord } from "./sandbox-record.js";
import { vmIsAlive } from "./state-machine.js";

/** A sandbox directory with its record. */
export interface FoundSandbox {
  readonly dir: SandboxDir;
  readonly record: SandboxRecord;
}

/** The sandboxes found on disk, sorted by what recovery does with each. */
export interface RecoveryScan {
  /** VM expected alive and a process with the recorded pid (and start time) runs: adopt. */
  readonly live: readonly FoundSandbox[];
  /** VM expected alive but its process is gone: becomes `failed`. */
  readonly dead: readonly FoundSandbox[];
  /** `failed` or `stopped`: kept as is. */
  readonly final: readonly FoundSandbox[];
  /** Ids whose directory had no readable record: removed. */
  readonly removed: readonly string[];
}

/** Reads every sandbox record under `dataDir` and sorts them (see {@link RecoveryScan}). */
export async function scanSandboxes(dataDir: string, log: Logger): Promise<RecoveryScan> {
  const { ids } = await SandboxDir.list(dataDir);
  const live: FoundSandbox[] = [];
  const dead: FoundSandbox[] = [];
  const final: FoundSandbox[] = [];
  const removed: string[] = [];
  for (const id of ids) {
    const dir = await SandboxDir.open(dataDir, id);
    const record = parseSandboxRecord(await dir.readRecord().catch(() => undefined));
    if (!record || record.id !== id) {
      log.warn({ sandboxId: id }, "sandbox directory without a readable record: removed");
      await dir.remove();
      removed.push(id);
    } else if (!vmIsAlive(record.state)) {
      final.push({ dir, record });
    } else if (record.pid !== undefined && processRuns(record.pid, record.pidStartTime)) {
      live.push({ dir, record });
    } else {
      dead.push({ dir, record });
    }
  }
  return { live, dead, final, removed };
}

/**
 * True when `pid` is a live, non-zombie process with `startTime` (when known).
 * A first sort only: adoption checks the process's identity fully.
 */
function processRuns(pid: number, startTime: string | undefined): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return false;
    return startTime === undefined || rest[19] === startTime;
  } catch {
    return false;
  }
}

/** Options of {@link adoptAll}. */
export interface AdoptAllOptions {
  /** Adoptions running at once. Default 8. */
  readonly parallelism?: number;
  /** Time one adoption may take, ms; past it, its signal aborts. Default 10000. */
  readonly timeoutMs?: number;
}

/**
 * Runs `adopt` for every item, at most `parallelism` at once, each under its
 * own deadline signal (a silent VM cannot stall startup; containerd
 * `shim_load.go` does the same). A failure is handed to `onError` and never stops the rest.
 */
export async function adoptAll<T>(
  items: readonly T[],
  adopt: (item: T, signal: AbortSignal) => Promise<void>,
  onError: (item: T, err: unknown) => Promise<void>,
  options: AdoptAllOptions = {},
): Promise<void> {
  const parallelism = Math.max(1, options.parallelism ?? 8);
  const timeoutMs = options.timeoutMs ?? 10_000;
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        // Every wait inside `adopt` takes the signal: it rejects once the deadline passes.
        await adopt(item, AbortSignal.timeout(timeoutMs));
      } catch (err) {
        await onError(item, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, items.length) }, worker));
}

/** What `recoverSandboxes` found and did, by sandbox id. */
export interface RecoveryReport {
  /** Live VMs re-adopted (now ready, or stopped/removed when they were being stopped/built). */
  readonly adopted: readonly string[];
  /** Sandboxes now `failed`: VM gone while the daemon was down, or adoption failed. */
  readonly failed: readonly string[];
  /** `failed`/`stopped` records kept as they were. */
  readonly kept: readonly string[];
  /** Directories without a readable record, removed. */
  readonly removed: readonly string[];
}

/**
 * Startup, once, before serving (and before anything else uses the network
 * manager): rebuilds the registry from the records an earlier daemon left
 * and starts the network manager keeping the slots of live sandboxes.
 *
 * A live VM is re-adopted, under `opts.recovery` bounds: its process checked
 * (pid + start time, `--id`, cwd), its exit watch, agent client, slot and
 * TTL (time left) re-armed; state and timestamps as recorded. `running`
 * comes back `ready`: the workload is no longer tracked (its output and
 * exit code are lost). A VM that was `starting` is failed (a boot cannot be
 * resumed), one `stopping` is killed and `stopped`, a golden build removed.
 * One that cannot be adopted is `failed` with the reason; startup goes on.
 */
export async function recoverSandboxes(
  ctx: SandboxContext,
  deps: {
    lifecycle: SandboxLifecycle;
    factory: SandboxFactory;
    /** Re-arms the auto-pause timer of a sandbox back in `ready`. */
    watchIdle: (s: Sandbox) => void;
    /** Reopens the recorded exposed ports of a sandbox that kept its network. */
    reopenPorts: (s: Sandbox) => Promise<void>;
  },
): Promise<RecoveryReport> {
  const { opts, registry, log } = ctx;
  const { lifecycle } = deps;
  const scan = await scanSandboxes(opts.dataDir, log);
  const slotOf = (r: SandboxRecord) => (r.network === "tap" ? r.slotIndex : undefined);
  // A paused sandbox keeps its namespace (and address) for its Resume.
  const paused = scan.final.filter((f) => f.record.state === "paused");
  const final = scan.final.filter((f) => f.record.state !== "paused");
  const net = await opts.network.recover(
    [...scan.live, ...paused].flatMap((f) => slotOf(f.record) ?? []),
  );
  const slots = new Map(net.kept.map((slot) => [slot.index, slot]));
  const readd = (f: FoundSandbox, slot: NetworkSlot | undefined) => {
    const s = sandboxFromRecord(f, slot, log);
    registry.readd(s);
    return s;
  };
  const adopted: string[] = [];
  const failed: string[] = [];
  for (const f of final) readd(f, undefined);
  for (const f of paused) {
    const index = slotOf(f.record);
    const slot = index === undefined ? undefined : slots.get(index);
    const s = readd(f, slot);
    if (index !== undefined && !slot) {
      const error = `its network namespace (slot ${index}) is gone: it cannot be resumed`;
      await registry.transition(s, { kind: "failed", error }, { error });
      failed.push(s.id);
    }
  }
  for (const f of scan.dead) {
    const s = readd(f, undefined);
    if (s.phase.kind === "stopping") {
      await registry.transition(s, { kind: "stopped" }, {});
    } else {
      await lifecycle.fail(s, "firecracker exited while the daemon was down");
      failed.push(s.id);
    }
  }
  await adoptAll(
    scan.live,
    async (f, signal) => {
      const index = slotOf(f.record);
      const slot = index === undefined ? undefined : slots.get(index);
      const s = readd(f, slot);
      if (index !== undefined && !slot)
        throw new Error(`its network namespace (slot ${index}) is gone`);
      await adopt(ctx, deps, s, f.record, signal);
      adopted.push(s.id);
    },
    async (f, err) => {
      const s = registry.find(f.record.id);
      if (s)
        await lifecycle.fail(s, `re-adoption after a daemon restart failed: ${errorText(err)}`);
      failed.push(f.record.id);
    },
    opts.recovery,
  );
  // Armed only now: a TTL that ran out while the daemon was down must not race an adoption.
  for (const s of [...registry.all()]) {
    if (s.spec.hidden) await lifecycle.remove(s.id, { force: true }).catch(() => {});
    else {
      lifecycle.armTtl(s);
      deps.watchIdle(s);
      if (s.tap) await deps.reopenPorts(s);
      else if (s.ports.size > 0) s.takePorts();
    }
  }
  const report = {
    adopted,
    failed,
    kept: scan.final.map((f) => f.record.id).filter((id) => !failed.includes(id)),
    removed: scan.removed,
  };
  if (scan.live.length + scan.dead.length + scan.final.length > 0)
    log.info(report, "sandboxes of an earlier daemon recovered");
  return report;
}

/** A sandbox as its record describes it, in its recorded state (`running` comes back `ready`). */
function sandboxFromRecord(f: FoundSandbox, slot: NetworkSlot | undefined, log: Logger): Sandbox {
  const { dir, record } = f;
  const phase: SandboxPhase =
    record.state === "failed"
      ? { kind: "failed", error: record.error ?? "failed" }
      : record.state === "stopping"
        ? { kind: "stopping", done: Promise.resolve() }
        : record.state === "paused"
          ? { kind: "paused", at: new Date(record.pausedAt ?? record.createdAt) }
          : record.state === "running"
            ? // `running` is not tracked across a restart: the workload's session is gone.
              { kind: "ready" }
            : { kind: record.state };
  const s = new Sandbox(
    {
      id: record.id,
      requestKey: record.requestKey,
      labels: record.labels,
      kernel: record.kernel,
      rootfs: record.rootfs,
      bootArgs: record.bootArgs,
      vcpus: record.vcpus,
      memoryMib: record.memoryMib,
      network: record.network,
      ttlSeconds: record.ttlSeconds,
      workload: record.workload,
      createdFrom: record.createdFrom,
      snapshotId: record.snapshotId,
      createdAt: new Date(record.createdAt),
      diskBytes: apparentSize(dir.absolute.rootfs),
      hidden: record.hidden ?? false,
      autoPauseSeconds: record.autoPauseSeconds ?? 0,
      image: record.image,
    },
    {
      dir,
      slot,
      phase,
      networkPolicy: record.networkPolicy,
      ports: record.exposedPorts ?? [],
      history: {
        readyAt: record.readyAt ? new Date(record.readyAt) : undefined,
        lastExitedAt: record.lastExitedAt ? new Date(record.lastExitedAt) : undefined,
        lastExitCode: record.lastExitCode,
      },
      log,
    },
  );
  if (record.state === "paused") {
    s.setPausedBytes(
      apparentSize(dir.absolute.pausedVmstate) + apparentSize(dir.absolute.pausedMem),
    );
  }
  return s;
}

/** Re-attaches a re-registered sandbox to its running Firecracker (see `recoverSandboxes`). */
async function adopt(
  ctx: SandboxContext,
  deps: { lifecycle: SandboxLifecycle; factory: SandboxFactory },
  s: Sandbox,
  record: SandboxRecord,
  signal: AbortSignal,
): Promise<void> {
  const { registry, opts } = ctx;
  const pid = record.pid;
  if (pid === undefined) throw new Error("its record has no pid");
  const { vm, state } = await MicroVm.adopt(
    opts.runtime,
    { dir: s.dir, net: s.tap, target: { pid, startTime: record.pidStartTime } },
    signal,
  );
  if (s.phase.kind === "stopping") {
    // It was being stopped when the daemon died: finish the stop.
    s.attachVm(vm);
    s.lifetime.abort();
    await deps.lifecycle.release(s);
    await registry.transition(s, { kind: "stopped" }, {});
    return;
  }
  await deps.lifecycle.attach(s, vm);
  if (s.phase.kind === "starting" || state === "not-started") {
    await deps.lifecycle.fail(s, "boot interrupted by a daemon restart");
    return;
  }
  if (state === "resumed")
    s.log.warn({ vmState: "Paused" }, "resumed a VM left paused by a checkpoint cut short");
  await deps.factory.connectAgent(s, signal, { wait: false });
  if (record.state === "running") {
    s.log.info(
      { recordedState: record.state },
      "a workload was running when the daemon stopped: its exit code is unknown",
    );
  }
  // The record gains this process's start time if an older daemon wrote it.
  ctx.tasks.track(registry.persist(s));
}

/** Apparent size of a file, 0 when it cannot be read. */
function apparentSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { isAbsolute, relative } from "node:path";
import type { FirecrackerProcess } from "@vmm/firecracker";
import { AgentClient, type AgentProcess } from "../agent/index.js";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
} from "../errors.js";
import {
  generateId,
  type Logger,
  type LongTimeout,
  moveAside,
  setLongTimeout,
  validateId,
} from "../internal/index.js";
import type { NetworkManager, NetworkSlot, TapSlot } from "../network/index.js";
import type { SnapshotCatalog, SnapshotEntry, UsableSnapshot } from "../snapshot/index.js";
import {
  type CloneResult,
  type DiskCloner,
  linkOrClone,
  type ResolvedImage,
  resolveImage,
  SandboxDir,
} from "../storage/index.js";
import {
  adoptMicroVm,
  bootMicroVm,
  loadMicroVmSnapshot,
  requestMicroVmShutdown,
  snapshotMicroVm,
  type VmmRuntime,
} from "../vm/microvm.js";
import { Admission, type CommittedUsage, type Reservation } from "./admission.js";
import { EventBus } from "./event-bus.js";
import { type GoldenOptions, GoldenPool, type GoldenSpec } from "./golden-pool.js";
import type { SandboxLimits } from "./limits.js";
import { compareByCreation } from "./list-order.js";
import { type AdoptAllOptions, adoptAll, type FoundSandbox, scanSandboxes } from "./recovery.js";
import { validateCreateRequest, validateLabels, validateProcessSpec } from "./request-limits.js";
import type { SandboxRecord } from "./sandbox-record.js";
import { defaultSnapshotName } from "./snapshot-name.js";
import { stableKey } from "./stable-key.js";
import { assertTransition, vmIsAlive } from "./state-machine.js";
import type {
  CreatedFrom,
  CreateSandboxSpec,
  EventAction,
  NetworkMode,
  ProcessOutput,
  ProcessSession,
  ProcessSpec,
  SandboxEvent,
  SandboxStateName,
  SandboxView,
  SnapshotView,
} from "./types.js";

/** Defaults applied to Create requests (config `[defaults]`, `[network] mode`). */
export interface SandboxDefaults {
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly network: NetworkMode;
}

/** Options of `SandboxManager`. */
export interface SandboxManagerOptions {
  readonly dataDir: string;
  /** Where kernel and rootfs names are looked up. */
  readonly imagesDir: string;
  /**
   * Further directories a request's absolute kernel/rootfs path may point into
   * (config `storage.allowed_image_roots`). Default none: only `imagesDir`.
   */
  readonly allowedImageRoots?: readonly string[];
  readonly runtime: VmmRuntime;
  /** Network slots for mode "tap" sandboxes (a "none" manager makes every sandbox NIC-less). */
  readonly network: NetworkManager;
  readonly cloner: DiskCloner;
  readonly defaults: SandboxDefaults;
  readonly limits: SandboxLimits;
  readonly agent: {
    readonly port: number;
    readonly readiness: "agent" | "vmm";
    readonly bootTimeoutMs: number;
    readonly callTimeoutMs: number;
  };
  readonly logger: Logger;
  /**
   * Snapshot catalog, or the promise of one still being opened (startup does
   * not wait for it); absent = Checkpoint/Restore answer UNIMPLEMENTED.
   */
  readonly catalog?: SnapshotCatalog | Promise<SnapshotCatalog>;
  /**
   * Golden snapshots (config `[golden]`): Create restores a pre-booted
   * snapshot of the same kernel/rootfs/size/boot args instead of booting.
   * Needs `catalog`. Absent = off. Golden snapshots have their own budget:
   * they never count against `limits`.
   */
  readonly golden?: GoldenOptions;
  /**
   * Put host details (Firecracker pids, absolute image and snapshot paths)
   * in views; otherwise images are named relative to `imagesDir` and
   * snapshot directories relative to `dataDir` (config
   * `grpc.expose_host_details`). Default false.
   */
  readonly exposeHostDetails?: boolean;
  /** Called on every Create (the daemon warns when sandboxes are simulated). */
  readonly onCreate?: (id: string) => void;
  /** Bounds of startup re-adoption (`recover`): parallelism and per-sandbox deadline. */
  readonly recovery?: AdoptAllOptions;
}

/** What `SandboxManager.recover` found and did, by sandbox id. */
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

/** Longest graceful-stop wait a client may ask for (Stop.timeout_seconds). */
export const MAX_STOP_TIMEOUT_SECONDS = 3600;

/** Mutable per-sandbox state, owned by the manager. */
interface Sandbox {
  readonly id: string;
  readonly requestKey: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly network: NetworkMode;
  readonly ttlSeconds: number;
  readonly workload: ProcessSpec | undefined;
  readonly createdFrom: CreatedFrom;
  readonly snapshotId: string | undefined;
  readonly createdAt: Date;
  /** Apparent size of its writable disk (counts against limits.max_total_disk_gib). */
  readonly diskBytes: number;
  readonly dir: SandboxDir;
  readonly log: Logger;
  /** Aborted when the sandbox is stopped or removed: cancels a boot in progress. */
  readonly lifetime: AbortController;
  state: SandboxStateName;
  slot: NetworkSlot | undefined;
  fc: FirecrackerProcess | undefined;
  agent: AgentClient | undefined;
  readyAt: Date | undefined;
  lastExitedAt: Date | undefined;
  lastExitCode: number | undefined;
  error: string | undefined;
  /** Workloads (Run, Exec, initial cmd) running now. */
  workloads: number;
  stopRequested: boolean;
  /** The sandbox is being failed on purpose (boot error): exits are expected. */
  ending: boolean;
  /** Settles when the current stop finishes. */
  stopping: Promise<void> | undefined;
  removing: Promise<void> | undefined;
  ttlTimer: LongTimeout | undefined;
  /** A checkpoint holds the VM paused: workloads and other checkpoints must wait. */
  checkpointing: boolean;
  /** Internal (golden builds): not listed, no events. */
  readonly hidden: boolean;
  /** The record write in flight, and whether the state changed since it began. */
  persisting: Promise<void> | undefined;
  persistDirty: boolean;
  /** Resolves when the sandbox leaves `starting` (ready, failed or stopping). */
  readonly settled: Promise<void>;
  markSettled: () => void;
}

/** What `register` needs; everything else starts empty. */
type SandboxInit = Pick<
  Sandbox,
  | "id"
  | "requestKey"
  | "labels"
  | "kernel"
  | "rootfs"
  | "bootArgs"
  | "vcpus"
  | "memoryMib"
  | "network"
  | "ttlSeconds"
  | "workload"
  | "createdFrom"
  | "snapshotId"
  | "dir"
  | "slot"
  | "hidden"
  | "diskBytes"
> & { readonly state?: SandboxStateName; readonly createdAt?: Date };

function newSandbox(init: SandboxInit, log: Logger): Sandbox {
  let markSettled: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    markSettled = resolve;
  });
  return {
    ...init,
    createdAt: init.createdAt ?? new Date(),
    log: log.child({ sandboxId: init.id }),
    lifetime: new AbortController(),
    state: init.state ?? "starting",
    fc: undefined,
    agent: undefined,
    readyAt: undefined,
    lastExitedAt: undefined,
    lastExitCode: undefined,
    error: undefined,
    workloads: 0,
    stopRequested: false,
    ending: false,
    stopping: undefined,
    removing: undefined,
    ttlTimer: undefined,
    checkpointing: false,
    persisting: undefined,
    persistDirty: false,
    settled,
    markSettled,
  };
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/**
 * The registry of sandboxes and their lifecycle.
 *
 * Invariants:
 * - every state change goes through `transition()`, which checks the state
 *   machine, writes the record atomically, then publishes the event;
 * - a sandbox in the registry has a directory; the registry entry is deleted
 *   only after the directory is gone (`removed` is the last event);
 * - a network slot is held exactly while the microVM may run (acquired in
 *   Create, released once the process exited);
 * - VMs live under the sandbox's own `lifetime` signal, never a request's.
 */
export class SandboxManager {
  private readonly sandboxes = new Map<string, Sandbox>();
  /**
   * The last view of each sandbox and the slot and pid it was built from:
   * `view()` returns the same frozen object until a field it shows changed,
   * so vmm-grpc can cache what it derives from a view (keyed by identity).
   */
  private readonly views = new WeakMap<
    Sandbox,
    { view: SandboxView; slot: NetworkSlot | undefined; pid: number | undefined }
  >();
  private readonly bus = new EventBus();
  private readonly opts: SandboxManagerOptions;
  private readonly log: Logger;
  private readonly background = new Set<Promise<unknown>>();
  /** Golden snapshots (config `[golden]`); absent when off. */
  private readonly golden: GoldenPool | undefined;
  private readonly admission: Admission;
  /** Ids admitted but not yet registered: a second Create of one waits for the first. */
  private readonly pendingIds = new Map<string, Promise<void>>();
  private closed = false;
  private nextCid = 3;

  constructor(options: SandboxManagerOptions) {
    this.opts = options;
    this.log = options.logger;
    this.admission = new Admission(options.limits, () => this.committedUsage());
    this.golden =
      options.golden &&
      new GoldenPool({
        budget: options.golden,
        catalog: () => this.catalog,
        builder: this.goldenBuilder(),
        agentPort: options.agent.port,
        track: (p) => this.track(p),
        log: this.log,
      });
    if (options.catalog instanceof Promise) {
      options.catalog.then(
        (c) => {
          this.catalog = c;
        },
        (err: unknown) => this.log.error({ err }, "opening the snapshot catalog failed"),
      );
    } else {
      this.catalog = options.catalog;
    }
  }

  // ── Queries ────────────────────────────────────────────────────────────

  inspect(id: string): SandboxView {
    return this.view(this.get(id));
  }

  /** The sandboxes matching `filter`, in `compareByCreation` order (oldest first). */
  list(filter: {
    state?: SandboxStateName;
    labels: Readonly<Record<string, string>>;
  }): SandboxView[] {
    validateLabels("labels", filter.labels);
    const out: SandboxView[] = [];
    const labels = Object.entries(filter.labels);
    for (const s of this.sandboxes.values()) {
      if (s.hidden) continue;
      if (filter.state !== undefined && s.state !== filter.state) continue;
      if (!labels.every(([k, v]) => s.labels[k] === v)) continue;
      out.push(this.view(s));
    }
    return out.sort(compareByCreation);
  }

  events(
    filter: { id?: string; action?: EventAction },
    signal: AbortSignal,
  ): AsyncIterable<SandboxEvent> {
    return this.bus.subscribe(filter, signal);
  }

  // ── Create ─────────────────────────────────────────────────────────────

  /**
   * Registers a sandbox in state `starting` (network slot and directory
   * taken) and boots it in the background. Idempotent by caller id.
   */
  async create(spec: CreateSandboxSpec, options: { hidden?: boolean } = {}): Promise<SandboxView> {
    if (this.closed) throw new UnavailableError("the daemon is shutting down");
    const id = spec.id === undefined ? generateId("sb") : validateId("sandbox_id", spec.id, "id");
    const resolved = this.resolveSpec(spec);
    const requestKey = stableKey({ ...spec, id: undefined });
    const existing = this.sandboxes.get(id);
    if (existing) {
      if (existing.requestKey === requestKey) return this.view(existing);
      throw new AlreadyExistsError(`sandbox ${id} already exists with a different spec`);
    }
    // Request values are confined to the image roots; config defaults and the daemon's own (hidden) creates are trusted.
    const trusted = (v: string | undefined) => ({ trusted: v === undefined || !!options.hidden });
    const kernel = await this.resolveImage(resolved.kernel, "kernel", trusted(spec.kernel));
    const rootfs = await this.resolveImage(resolved.rootfs, "rootfs", trusted(spec.rootfs));
    const inFlight = this.pendingIds.get(id);
    if (inFlight || this.sandboxes.has(id)) {
      await inFlight; // lost a race with the same id: answer as the idempotent repeat
      return this.create(spec, options);
    }
    if (resolved.network === "tap" && this.opts.network.mode !== "tap") {
      throw new FailedPreconditionError(
        'network.mode: "tap" networking is not enabled on this daemon',
        {
          hint: 'set [network] mode = "tap" in the daemon config, or create with network mode "none"',
        },
      );
    }
    // Admission and reservation in one synchronous step, before any await.
    const reservation = options.hidden
      ? undefined
      : this.admission.reserveSandbox({
          vcpus: resolved.vcpus,
          memoryMib: resolved.memoryMib,
          diskBytes: rootfs.identity.size,
        });
    const golden: ReturnType<GoldenPool["lookup"]> =
      (!options.hidden && this.golden?.lookup(resolved, kernel, rootfs)) || {};
    const s = await this.admitted(id, reservation, async () => {
      const { slot, dir } = await this.allocate(id, resolved.network);
      return this.register({
        id,
        requestKey,
        labels: { ...spec.labels },
        kernel: kernel.path,
        rootfs: rootfs.path,
        bootArgs: resolved.bootArgs,
        vcpus: resolved.vcpus,
        memoryMib: resolved.memoryMib,
        network: resolved.network,
        ttlSeconds: spec.ttlSeconds,
        workload: spec.workload,
        createdFrom: golden.snapshot ? "golden" : "boot",
        snapshotId: golden.snapshot?.id,
        diskBytes: rootfs.identity.size,
        dir,
        slot,
        hidden: options.hidden ?? false,
      });
    });
    const start = golden.snapshot ? this.bootFromGolden(s, golden.snapshot) : this.boot(s);
    this.track(start.finally(() => reservation?.settled()));
    if (golden.key !== undefined && !golden.snapshot)
      this.golden?.ensure(golden.key, resolved, kernel, rootfs);
    return this.view(s);
  }

  /**
   * Runs `register` (allocate + register) for an admitted id: the id counts
   * as taken meanwhile, the reservation passes to the registry on success
   * and is given back on failure.
   */
  private async admitted(
    id: string,
    reservation: Reservation | undefined,
    register: () => Promise<Sandbox>,
  ): Promise<Sandbox> {
    let settle = () => {};
    this.pendingIds.set(
      id,
      new Promise<void>((resolve) => {
        settle = resolve;
      }),
    );
    try {
      const s = await register();
      reservation?.registered();
      return s;
    } catch (err) {
      reservation?.[Symbol.dispose]();
      throw err;
    } finally {
      this.pendingIds.delete(id);
      settle();
    }
  }

  /** What registered sandboxes and committed snapshots hold (golden ones have their own budget). */
  private committedUsage(): CommittedUsage {
    let sandboxes = 0;
    let vcpus = 0;
    let memoryMib = 0;
    let diskBytes = 0;
    for (const s of this.sandboxes.values()) {
      if (s.hidden) continue;
      sandboxes++;
      diskBytes += s.diskBytes;
      if (vmIsAlive(s.state)) {
        vcpus += s.vcpus;
        memoryMib += s.memoryMib;
      }
    }
    for (const e of this.catalog?.list() ?? []) diskBytes += snapshotBytes(e);
    return { sandboxes, vcpus, memoryMib, diskBytes };
  }

  /**
   * Takes what a new sandbox holds before it is registered: a network slot
   * (mode tap) and its directory. On failure nothing stays taken.
   */
  private async allocate(
    id: string,
    network: NetworkMode,
  ): Promise<{ slot: NetworkSlot | undefined; dir: SandboxDir }> {
    let slot: NetworkSlot | undefined;
    try {
      if (network === "tap") slot = await this.opts.network.acquire();
      return { slot, dir: await SandboxDir.create(this.opts.dataDir, id) };
    } catch (err) {
      if (slot) await this.opts.network.release(slot).catch(() => {});
      throw err;
    }
  }

  /** Adds a new sandbox to the registry: record written, `created` published, TTL armed. */
  private async register(init: SandboxInit): Promise<Sandbox> {
    const s = newSandbox(init, this.log);
    this.sandboxes.set(s.id, s);
    this.track(this.persist(s));
    this.publish(s, "created", {
      created_from: s.createdFrom,
      ...(s.snapshotId !== undefined && { snapshot_id: s.snapshotId }),
      ...(s.slot?.mode === "tap" && { ip_address: s.slot.hostIp }),
    });
    if (!s.hidden) this.opts.onCreate?.(s.id);
    if (s.ttlSeconds > 0) this.armTtl(s);
    return s;
  }

  /** resolveImage with this daemon's roots; `trusted` for config values and the daemon's own paths. */
  private resolveImage(
    nameOrPath: string,
    field: string,
    options: { trusted: boolean },
  ): Promise<ResolvedImage> {
    return resolveImage(this.opts.imagesDir, nameOrPath, field, {
      allowedRoots: this.opts.allowedImageRoots ?? [],
      privateDirs: [this.opts.dataDir],
      trusted: options.trusted,
    });
  }

  private resolveSpec(spec: CreateSandboxSpec) {
    const d = this.opts.defaults;
    const l = this.opts.limits;
    const vcpus = spec.vcpus ?? d.vcpus;
    const memoryMib = spec.memoryMib ?? d.memoryMib;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > l.maxVcpusPerSandbox) {
      throw new InvalidArgumentError(
        "limits.vcpus",
        `must be from 1 to ${l.maxVcpusPerSandbox}, got ${vcpus}`,
      );
    }
    if (vcpus > 1 && vcpus % 2 === 1) {
      throw new InvalidArgumentError(
        "limits.vcpus",
        `must be 1 or an even number (Firecracker), got ${vcpus}`,
      );
    }
    if (!Number.isInteger(memoryMib) || memoryMib < 16 || memoryMib > l.maxMemoryMibPerSandbox) {
      throw new InvalidArgumentError(
        "limits.memory_mib",
        `must be from 16 to ${l.maxMemoryMibPerSandbox} MiB, got ${memoryMib}`,
      );
    }
    validateCreateRequest(spec);
    if (spec.workload) validateProcessSpec(spec.workload);
    const bootArgs = spec.bootArgs ?? d.bootArgs;
    if (bootArgs.length > 1500) {
      throw new InvalidArgumentError(
        "boot_args",
        "must be at most 1500 bytes (Firecracker's limit is 2048 with ours added)",
      );
    }
    if (/[\0\n]/.test(bootArgs))
      throw new InvalidArgumentError("boot_args", "must not contain NUL or newlines");
    return {
      vcpus,
      memoryMib,
      kernel: spec.kernel ?? d.kernel,
      rootfs: spec.rootfs ?? d.rootfs,
      bootArgs,
      network: spec.network ?? d.network,
    };
  }

  /** Boot in the background: clone the disk, start Firecracker, wait for readiness. */
  private async boot(s: Sandbox): Promise<void> {
    const { agent, runtime } = this.opts;
    const deadline = AbortSignal.timeout(agent.bootTimeoutMs);
    const signal = AbortSignal.any([s.lifetime.signal, deadline]);
    const started = performance.now();
    try {
      // Start early, await late: the disk clone runs while Firecracker starts.
      const rootfsReady = this.opts.cloner.clone(s.rootfs, s.dir.absolute.rootfs, signal);
      rootfsReady.catch(() => {}); // awaited by bootMicroVm; this only marks it handled
      const net = s.slot?.mode === "tap" ? s.slot : undefined;
      const fc = await bootMicroVm(
        runtime,
        {
          dir: s.dir,
          kernelPath: s.kernel,
          bootArgs: this.kernelCmdline(s, net),
          vcpus: s.vcpus,
          memoryMib: s.memoryMib,
          net,
          vsockCid: this.allocateCid(),
          rootfsReady,
        },
        signal,
      ).catch(async (err: unknown) => {
        await rootfsReady.catch(() => {}); // never leave a copy writing into a dir being removed
        throw err;
      });
      s.fc = fc;
      this.watchExit(s, fc);
      this.track(this.persist(s));
      if (agent.readiness === "agent") {
        s.agent = new AgentClient({
          endpoint: { kind: "vsock", udsPath: s.dir.absolute.vsockSocket, port: agent.port },
          requestTimeoutMs: agent.callTimeoutMs,
          spareConnection: true,
        });
        await s.agent.waitReady({ timeoutMs: agent.bootTimeoutMs, signal });
      }
      if (s.state !== "starting") return; // stopped or failed meanwhile
      s.readyAt = new Date();
      await this.transition(s, "ready", {
        boot_ms: String(Math.round(performance.now() - started)),
        rootfs_clone: cloneKind(await rootfsReady),
      });
      void this.opts.cloner.prepare(s.rootfs);
      if (s.workload) this.track(this.runInitialWorkload(s, s.workload));
    } catch (err) {
      if (s.stopRequested || s.state !== "starting") return;
      const reason = deadline.aborted
        ? `boot timed out after ${agent.bootTimeoutMs} ms (agent.boot_timeout_ms): ${errorText(err)}`
        : `boot failed: ${errorText(err)}`;
      await this.fail(s, reason, {}, err);
    }
  }

  private kernelCmdline(s: Sandbox, net: TapSlot | undefined): string {
    const parts = [s.bootArgs];
    if (net) parts.push(net.kernelIpArg());
    parts.push(`vmm.agent_port=${this.opts.agent.port}`, `vmm.hostname=${s.id}`);
    return parts.join(" ");
  }

  private allocateCid(): number {
    // Guest CIDs only need to be unique per host vsock device; each VM has its own UDS.
    const cid = this.nextCid;
    this.nextCid = this.nextCid >= 0xfffffff0 ? 3 : this.nextCid + 1;
    return cid;
  }

  /** Turns an unexpected Firecracker exit into `failed` (or `stopped` after a Stop). */
  private watchExit(s: Sandbox, fc: FirecrackerProcess): void {
    // Not a tracked task: a VM kept running at shutdown (on_shutdown = "keep") never exits
    // before close() returns. The failure it causes is tracked.
    void fc.exited.then((exit) => {
      // A re-adopted VM is not our child: its exit status is unknown (both null).
      const how = exit.signal
        ? `killed by ${exit.signal}`
        : exit.code !== null
          ? `exited with code ${exit.code}`
          : "exited";
      if (s.stopRequested || s.ending || !vmIsAlive(s.state) || this.closed) return;
      s.log.warn({ exit }, "firecracker died underneath");
      this.track(this.fail(s, `firecracker ${how} unexpectedly`, exitAttributes(exit)));
    });
  }

  /**
   * Moves to `failed` with `reason` and releases the VM and the network
   * slot. Clients (the `error` field, the event) get `reason` as
   * {@link clientText}; the log gets it whole, with `cause`.
   */
  private async fail(
    s: Sandbox,
    reason: string,
    attrs: Record<string, string> = {},
    cause?: unknown,
  ): Promise<void> {
    if (!vmIsAlive(s.state) || s.ending) return;
    s.ending = true;
    s.error = this.clientText(reason);
    if (s.error !== reason || cause !== undefined) s.log.warn({ err: cause, reason }, "failing");
    s.lifetime.abort();
    await this.releaseVm(s);
    await this.transition(s, "failed", { error: s.error, ...attrs });
  }

  /**
   * A failure text as clients see it: its first line only (Firecracker launch
   * errors append the process's console output), at most 1 KiB, and without
   * the daemon's directories unless host details are exposed.
   */
  private clientText(text: string): string {
    let t = text.split("\n", 1)[0] ?? "";
    if (!this.opts.exposeHostDetails) {
      t = t
        .replaceAll(this.opts.imagesDir, "<images_dir>")
        .replaceAll(this.opts.dataDir, "<data_dir>");
    }
    return t.length > 1024 ? `${t.slice(0, 1024)}… (truncated; the daemon log has it whole)` : t;
  }

  private async releaseVm(s: Sandbox): Promise<void> {
    s.agent?.close();
    const fc = s.fc;
    if (fc) {
      fc.kill();
      await fc.exited;
      await fc.cleanup().catch((err: unknown) => s.log.warn({ err }, "firecracker cleanup failed"));
    }
    const slot = s.slot;
    s.slot = undefined;
    if (slot && slot.mode === "tap") {
      await this.opts.network
        .release(slot)
        .catch((err: unknown) => s.log.error({ err }, "releasing the network slot failed"));
    }
  }

  // ── Stop / Remove ──────────────────────────────────────────────────────

  /** Graceful stop (Ctrl-Alt-Del), then SIGKILL after `timeoutSeconds`. Idempotent. */
  async stop(id: string, timeoutSeconds: number): Promise<void> {
    if (
      !Number.isInteger(timeoutSeconds) ||
      timeoutSeconds < 0 ||
      timeoutSeconds > MAX_STOP_TIMEOUT_SECONDS
    ) {
      throw new InvalidArgumentError(
        "timeout_seconds",
        `must be from 0 to ${MAX_STOP_TIMEOUT_SECONDS}, got ${timeoutSeconds}`,
      );
    }
    const s = this.get(id);
    await this.stopSandbox(s, timeoutSeconds * 1000);
  }

  private stopSandbox(s: Sandbox, graceMs: number): Promise<void> {
    if (s.stopping) return s.stopping;
    if (!vmIsAlive(s.state) || s.ending) return Promise.resolve();
    s.stopRequested = true;
    s.stopping = (async () => {
      await this.transition(s, "stopping", { timeout_seconds: String(graceMs / 1000) });
      s.lifetime.abort();
      let exitAttrs: Record<string, string> = {};
      const fc = s.fc;
      if (fc) {
        let exited = false;
        if (graceMs > 0) {
          try {
            await requestMicroVmShutdown(fc, s.id, { timeoutMs: Math.min(graceMs, 5000) });
            const t = setLongTimeout(() => fc.kill(), graceMs);
            const exit = await fc.exited;
            t.clear();
            exited = true;
            exitAttrs = exitAttributes(exit);
          } catch (err) {
            s.log.debug({ err }, "graceful stop not possible; killing");
          }
        }
        if (!exited) {
          fc.kill();
          exitAttrs = exitAttributes(await fc.exited);
        }
      }
      await this.releaseVm(s);
      if (s.state === "stopping") await this.transition(s, "stopped", exitAttrs);
    })();
    return s.stopping;
  }

  /** Stops if needed, releases everything and deletes the sandbox. */
  async remove(
    id: string,
    options: { force: boolean },
    attrs: Record<string, string> = {},
  ): Promise<void> {
    const s = this.get(id);
    if (s.removing) return s.removing;
    if (s.state === "running" && !options.force) {
      throw new FailedPreconditionError(`sandbox ${id} is running a workload`, {
        hint: "wait for it to finish, or remove with force",
      });
    }
    // Assigned before the work starts, so every step below already sees `removing`.
    s.removing = Promise.resolve().then(async () => {
      s.ttlTimer?.clear();
      await this.stopSandbox(s, options.force ? 0 : 10_000);
      await this.releaseVm(s);
      await s.persisting;
      // Gone for every scanner once renamed; the content is freed in the background
      // (a crash meanwhile leaves a `.deleting` dir that the next start removes).
      const aside = await moveAside(s.dir.path);
      if (aside) this.track(rm(aside, { recursive: true, force: true }));
      this.sandboxes.delete(s.id);
      this.publish(s, "removed", attrs);
    });
    return s.removing;
  }

  private armTtl(s: Sandbox): void {
    // Any uint32 of seconds: setLongTimeout schedules past Node's 24.8-day timer limit.
    const due = s.createdAt.getTime() + s.ttlSeconds * 1000 - Date.now();
    s.ttlTimer = setLongTimeout(() => {
      s.log.info({ ttlSeconds: s.ttlSeconds }, "ttl expired: removing");
      this.track(
        this.remove(s.id, { force: true }, { reason: "ttl" }).catch((err: unknown) => {
          if (!(err instanceof NotFoundError)) s.log.error({ err }, "ttl removal failed");
        }),
      );
    }, due);
  }

  // ── Run / Exec ─────────────────────────────────────────────────────────

  /** Runs a command to completion; the sandbox is `running` meanwhile (Run while running fails). */
  run(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.startProcess(this.get(id), spec, signal, { exclusive: true, stdin: false });
  }

  /**
   * Starts an interactive process. Several Exec sessions may run at once (and
   * alongside a Run); the sandbox is `running` while any workload runs.
   */
  exec(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.startProcess(this.get(id), spec, signal, { exclusive: false, stdin: true });
  }

  private async startProcess(
    s: Sandbox,
    spec: ProcessSpec,
    signal: AbortSignal,
    mode: { exclusive: boolean; stdin: boolean },
  ): Promise<ProcessSession> {
    validateProcessSpec(spec);
    const agent = this.agentOf(s);
    if (s.checkpointing) {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is being checkpointed (paused); retry when it is done`,
      );
    }
    if (s.state === "running" && mode.exclusive) {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is running a workload; Run needs state ready`,
      );
    }
    if (s.state !== "ready" && s.state !== "running") {
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; it must be ready`);
    }
    const proc = await agent.run({
      argv: spec.cmd,
      env: spec.env,
      ...(spec.workingDir !== undefined && { cwd: spec.workingDir }),
      ...(spec.user !== undefined && { user: spec.user }),
      ...(spec.tty && { tty: spec.ttySize ?? { cols: 80, rows: 24 } }),
      ...(spec.timeoutSeconds > 0 && { timeoutMs: spec.timeoutSeconds * 1000 }),
      stdin: mode.stdin,
      signal,
    });
    return this.beginWorkload(s, proc, signal);
  }

  private async beginWorkload(
    s: Sandbox,
    proc: AgentProcess,
    signal: AbortSignal,
  ): Promise<ProcessSession> {
    s.workloads++;
    if (s.state === "ready") await this.transition(s, "running", {});
    let finished = false;
    const finish = async (exitCode: number | undefined) => {
      if (finished) return;
      finished = true;
      s.workloads--;
      if (exitCode !== undefined) {
        s.lastExitCode = exitCode;
        s.lastExitedAt = new Date();
      }
      if (s.workloads === 0 && s.state === "running") {
        await this.transition(
          s,
          "ready",
          {},
          "idle",
          exitCode === undefined ? {} : { exit_code: String(exitCode) },
        );
      }
    };
    signal.addEventListener("abort", () => void finish(undefined), { once: true });
    const output = async function* (): AsyncGenerator<ProcessOutput> {
      let exitCode: number | undefined;
      try {
        for await (const ev of proc) {
          if ("exit" in ev) {
            const e = ev.exit;
            exitCode = e.code ?? (e.signal !== undefined ? 128 + e.signal : 255);
            yield {
              kind: "exit",
              exitCode,
              signal: e.signalName ?? (e.signal !== undefined ? signalName(e.signal) : undefined),
              timedOut: e.timedOut,
            };
          } else {
            yield { kind: ev.stream, data: ev.data };
          }
        }
      } finally {
        proc.close();
        await finish(exitCode);
      }
    };
    return {
      output: output(),
      writeStdin: (data) => proc.writeStdin(data),
      closeStdin: () => proc.closeStdin(),
      resize: (cols, rows) => proc.resize(cols, rows),
    };
  }

  private async runInitialWorkload(s: Sandbox, spec: ProcessSpec): Promise<void> {
    const ac = new AbortController();
    s.lifetime.signal.addEventListener("abort", () => ac.abort(), { once: true });
    try {
      const session = await this.startProcess(s, spec, ac.signal, {
        exclusive: true,
        stdin: false,
      });
      for await (const out of session.output) {
        if (out.kind === "exit") s.log.info({ exitCode: out.exitCode }, "initial workload exited");
      }
    } catch (err) {
      s.log.warn({ err }, "initial workload failed");
    }
  }

  private agentOf(s: Sandbox): AgentClient {
    if (this.opts.agent.readiness === "vmm") {
      throw new FailedPreconditionError(`sandbox ${s.id} has no agent (agent.readiness = "vmm")`, {
        hint: 'use a rootfs with the vmm agent and agent.readiness = "agent"',
      });
    }
    if (!s.agent)
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; it must be ready`);
    return s.agent;
  }

  // ── Snapshots ──────────────────────────────────────────────────────────

  /** The catalog once open (golden lookups before then simply boot). */
  private catalog: SnapshotCatalog | undefined;

  private async catalogOrThrow(): Promise<SnapshotCatalog> {
    if (this.catalog) return this.catalog;
    if (!this.opts.catalog)
      throw new UnimplementedError("snapshots are not enabled in this daemon");
    return await this.opts.catalog;
  }

  /**
   * Pause → full snapshot → copy of the writable disk → resume. Files appear
   * in the catalog only once complete (temp dir + rename). The VM is resumed
   * whatever fails after the pause.
   */
  async checkpoint(req: {
    sandboxId: string;
    name: string | undefined;
    labels: Readonly<Record<string, string>>;
    hidden?: boolean;
    goldenKey?: string;
  }): Promise<SnapshotView> {
    validateLabels("labels", req.labels);
    const name = req.name === undefined ? "" : validateId("snapshot_name", req.name, "name");
    const catalog = await this.catalogOrThrow();
    const s = this.get(req.sandboxId);
    if (s.state !== "ready" || s.checkpointing) {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is ${s.checkpointing ? "being checkpointed" : s.state}; Checkpoint needs state ready`,
      );
    }
    const fc = s.fc;
    if (!fc) throw new FailedPreconditionError(`sandbox ${s.id} has no running microVM`);
    const maxSnapshots = this.opts.limits.maxSnapshotsPerSandbox;
    if (!req.hidden && maxSnapshots > 0) {
      const taken = catalog.list({ originSandboxId: s.id }).length;
      if (taken >= maxSnapshots) {
        throw new ResourceExhaustedError(
          `snapshots: sandbox ${s.id} has ${taken} snapshots, the most allowed (limits.max_snapshots_per_sandbox)`,
          { hint: "delete some of its snapshots first" },
        );
      }
    }
    // Memory + disk copy (+ a small vmstate); golden snapshots have their own budget.
    using _disk = req.hidden
      ? undefined
      : this.admission.reserveDisk(s.memoryMib * 2 ** 20 + s.diskBytes);
    s.checkpointing = true;
    const started = performance.now();
    try {
      const [kernel, rootfsBase] = await Promise.all([
        this.resolveImage(s.kernel, "kernel", { trusted: true }),
        this.resolveImage(s.rootfs, "rootfs", { trusted: true }),
      ]);
      const slot = s.slot?.mode === "tap" ? s.slot : undefined;
      await using pending = await catalog.beginSnapshot({
        name: name || defaultSnapshotName(s.id, Date.now()),
        originSandboxId: s.id,
        labels: { ...req.labels },
        kernel: { path: kernel.path, identity: kernel.identity },
        rootfsBase: { path: rootfsBase.path, identity: rootfsBase.identity },
        bootArgs: s.bootArgs,
        vcpus: s.vcpus,
        memoryMib: s.memoryMib,
        networkMode: s.network,
        guestNetwork: slot
          ? { guestIp: slot.guestIp, guestMac: slot.guestMac, tapName: slot.tapName }
          : null,
        ...(req.hidden !== undefined && { hidden: req.hidden }),
        ...(req.goldenKey !== undefined && { goldenKey: req.goldenKey }),
      });
      const rel = await pending.relativePathsFrom(s.dir.path);
      // Firecracker writes where it is told, relative to its cwd (the sandbox dir).
      const target = rel ?? { vmstate: s.dir.relative.vmstate, mem: s.dir.relative.mem };
      const call = { timeoutMs: Math.max(this.opts.runtime.apiTimeoutMs, 120_000) };
      await snapshotMicroVm(
        fc,
        s.id,
        target,
        call,
        async () => {
          if (!rel) {
            await pending.adoptFile(s.dir.absolute.vmstate, "vmstate");
            await pending.adoptFile(s.dir.absolute.mem, "mem");
          }
          await pending.addRootfs(s.dir.absolute.rootfs, this.opts.cloner.mode);
        },
        (err: unknown) => s.log.error({ err }, "resuming after a checkpoint failed"),
      );
      const meta = await pending.commit();
      const entry = catalog.get(meta.id);
      // Restores of a new snapshot are likely: the first need not wait for a disk copy.
      void this.opts.cloner.prepare(entry.paths.rootfs);
      const view = this.snapshotView(entry);
      this.publish(s, "checkpointed", {
        snapshot_id: meta.id,
        duration_ms: String(Math.round(performance.now() - started)),
      });
      return view;
    } finally {
      s.checkpointing = false;
    }
  }

  /**
   * A new sandbox from a snapshot: its own directory with a clone of the
   * snapshot's disk and links to its vmstate and memory, its own network slot
   * (same guest address in its own namespace), Firecracker started there with
   * `snapshot/load`. Ready when this returns.
   */
  async restore(req: {
    id: string | undefined;
    snapshotId: string;
    labels: Readonly<Record<string, string>>;
    ttlSeconds: number;
    requestKey?: string;
  }): Promise<SandboxView> {
    if (this.closed) throw new UnavailableError("the daemon is shutting down");
    validateLabels("labels", req.labels);
    const catalog = await this.catalogOrThrow();
    const snapshotId = validateId("snapshot_id", req.snapshotId, "snapshot_id");
    const id = req.id === undefined ? generateId("sb") : validateId("sandbox_id", req.id, "id");
    const taken = () => this.sandboxes.has(id) || this.pendingIds.has(id);
    if (taken()) throw new AlreadyExistsError(`sandbox ${id} already exists`);
    const snap = await catalog.usableOrThrow(snapshotId);
    if (taken()) throw new AlreadyExistsError(`sandbox ${id} already exists`);
    const meta = snap.meta;
    const network: NetworkMode = meta.networkMode === "tap" ? "tap" : "none";
    if (network === "tap" && this.opts.network.mode !== "tap") {
      throw new FailedPreconditionError(
        `snapshot ${snapshotId} was taken with network mode tap, which this daemon has not enabled`,
      );
    }
    // The memory file and vmstate are linked from the snapshot; only the disk is new.
    const reservation = this.admission.reserveSandbox({
      vcpus: meta.vcpus,
      memoryMib: meta.memoryMib,
      diskBytes: meta.files.rootfs.size,
    });
    const s = await this.admitted(id, reservation, async () => {
      const { slot, dir } = await this.allocate(id, network);
      return this.register({
        id,
        requestKey:
          req.requestKey ??
          stableKey({ restore: snapshotId, labels: req.labels, ttl: req.ttlSeconds }),
        labels: { ...req.labels },
        kernel: meta.kernel.path,
        rootfs: meta.rootfsBase.path,
        bootArgs: meta.bootArgs,
        vcpus: meta.vcpus,
        memoryMib: meta.memoryMib,
        network,
        ttlSeconds: req.ttlSeconds,
        workload: undefined,
        createdFrom: "restore",
        snapshotId,
        diskBytes: meta.files.rootfs.size,
        dir,
        slot,
        hidden: false,
      });
    });
    const started = performance.now();
    try {
      const clone = await this.loadFromSnapshot(s, snap);
      s.readyAt = new Date();
      await this.transition(s, "ready", {
        restore_ms: String(Math.round(performance.now() - started)),
        rootfs_clone: cloneKind(clone),
      });
      this.publish(s, "restored", { snapshot_id: snapshotId });
      void this.opts.cloner.prepare(snap.paths.rootfs);
      return this.view(s);
    } catch (err) {
      const removedMeanwhile = s.stopRequested;
      // A failed restore leaves nothing behind: the caller got no sandbox.
      if (!s.stopRequested && s.state === "starting")
        await this.fail(s, `restore failed: ${errorText(err)}`, {}, err);
      await this.remove(s.id, { force: true }, { reason: "restore failed" }).catch(() => {});
      // Files vanishing while they are cloned is a race the client lost, not a daemon bug:
      // the snapshot was deleted (NOT_FOUND) or the sandbox removed (FAILED_PRECONDITION).
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        if (removedMeanwhile)
          throw new FailedPreconditionError(
            `sandbox ${id} was removed while it was being restored`,
          );
        await catalog.usableOrThrow(snapshotId);
      }
      throw err;
    } finally {
      reservation.settled();
    }
  }

  /** Resolves with how the rootfs was cloned. */
  private async loadFromSnapshot(s: Sandbox, snap: UsableSnapshot): Promise<CloneResult> {
    const { agent, runtime } = this.opts;
    const signal = AbortSignal.any([s.lifetime.signal, AbortSignal.timeout(agent.bootTimeoutMs)]);
    // The memory file backs the clone for its whole life: link it (never a full copy).
    // The files are prepared while Firecracker starts; `snapshot/load` opens them.
    const files = Promise.all([
      this.opts.cloner.clone(snap.paths.rootfs, s.dir.absolute.rootfs, signal),
      linkOrClone(snap.paths.vmstate, s.dir.absolute.vmstate),
      linkOrClone(snap.paths.mem, s.dir.absolute.mem),
    ]);
    files.catch(() => {}); // awaited below; this only marks it handled
    const net = s.slot?.mode === "tap" ? s.slot : undefined;
    const rel = s.dir.relative;
    const fc = await runtime.launcher
      .launch(
        {
          ...runtime.launchDefaults,
          workDir: s.dir.path,
          id: s.id,
          ...(net && { netns: net.netns }),
          consoleLogPath: rel.consoleLog,
          cleanupPaths: [rel.vsockSocket],
        },
        signal,
      )
      .catch(async (err: unknown) => {
        await files.catch(() => {}); // never leave a copy writing into a dir being removed
        throw err;
      });
    s.fc = fc;
    this.watchExit(s, fc);
    const [clone] = await files;
    await loadMicroVmSnapshot(
      fc,
      s.id,
      {
        snapshot_path: rel.vmstate,
        mem_backend: { backend_type: "File", backend_path: rel.mem },
        resume_vm: true,
        ...(net &&
          snap.meta.guestNetwork && {
            network_overrides: [{ iface_id: "eth0", host_dev_name: net.tapName }],
          }),
      },
      { signal, timeoutMs: Math.max(runtime.apiTimeoutMs, 120_000) },
    );
    this.track(this.persist(s));
    if (agent.readiness === "agent") {
      // vsock connections are reset by a restore: every agent call opens a new one.
      s.agent = new AgentClient({
        endpoint: { kind: "vsock", udsPath: s.dir.absolute.vsockSocket, port: agent.port },
        requestTimeoutMs: agent.callTimeoutMs,
        spareConnection: true,
      });
      await s.agent.waitReady({ timeoutMs: agent.bootTimeoutMs, signal });
    }
    return clone;
  }

  /** The snapshots matching `filter`, in `compareByCreation` order (oldest first). */
  async listSnapshots(filter: {
    originSandboxId?: string;
    labels: Readonly<Record<string, string>>;
  }): Promise<SnapshotView[]> {
    validateLabels("labels", filter.labels);
    return (await this.catalogOrThrow())
      .list({
        ...(filter.originSandboxId !== undefined && { originSandboxId: filter.originSandboxId }),
        labels: { ...filter.labels },
      })
      .map((e) => this.snapshotView(e))
      .sort(compareByCreation);
  }

  /**
   * Deletes a snapshot. Restored sandboxes hold their own hard link (or
   * reflink) of the memory file, so deleting is safe while they run; a
   * running sandbox without one blocks the delete.
   */
  async deleteSnapshot(snapshotId: string): Promise<void> {
    const catalog = await this.catalogOrThrow();
    validateId("snapshot_id", snapshotId, "snapshot_id");
    await this.opts.cloner.discard(catalog.get(snapshotId).paths.rootfs);
    await catalog.delete(snapshotId, {
      usersOf: (sid) =>
        [...this.sandboxes.values()]
          .filter((s) => s.snapshotId === sid && vmIsAlive(s.state))
          .map((s) => s.id),
    });
  }

  // ── Golden snapshots ───────────────────────────────────────────────────

  /** How the golden pool builds: a hidden sandbox of this manager, booted, checkpointed, removed. */
  private goldenBuilder() {
    return {
      boot: async (
        id: string,
        spec: GoldenSpec,
        kernel: ResolvedImage,
        rootfs: ResolvedImage,
      ): Promise<void> => {
        await this.create(
          {
            id,
            labels: {},
            kernel: kernel.path,
            rootfs: rootfs.path,
            bootArgs: spec.bootArgs,
            vcpus: spec.vcpus,
            memoryMib: spec.memoryMib,
            network: spec.network,
            ttlSeconds: 0,
          },
          { hidden: true },
        );
        const s = this.get(id);
        await s.settled;
        if (s.state !== "ready")
          throw new Error(`golden sandbox ${id} is ${s.state}: ${s.error ?? ""}`);
      },
      checkpoint: async (id: string, goldenKey: string): Promise<string> =>
        (await this.checkpoint({ sandboxId: id, name: id, labels: {}, hidden: true, goldenKey }))
          .id,
      remove: (id: string) => this.remove(id, { force: true }),
      deleteSnapshot: (snapshotId: string) => this.deleteSnapshot(snapshotId),
    };
  }

  /**
   * Starts building the golden snapshot of the default spec (daemon startup) and
   * returns at once: neither startup nor any Create waits for it.
   */
  warmGolden(): void {
    if (!this.golden || !this.opts.catalog) return;
    this.track(
      this.warmDefaultGolden().catch((err: unknown) =>
        this.log.warn({ err }, "golden snapshot of the defaults not started"),
      ),
    );
  }

  private async warmDefaultGolden(): Promise<void> {
    await this.catalogOrThrow();
    const r = this.resolveSpec({ labels: {}, ttlSeconds: 0 });
    const kernel = await this.resolveImage(r.kernel, "kernel", { trusted: true });
    const rootfs = await this.resolveImage(r.rootfs, "rootfs", { trusted: true });
    const golden = this.golden?.lookup(r, kernel, rootfs) ?? {};
    if (golden.key !== undefined && !golden.snapshot)
      this.golden?.ensure(golden.key, r, kernel, rootfs);
  }

  /** The golden path of Create: restore, then give the clone its own identity through the agent. */
  private async bootFromGolden(s: Sandbox, snap: UsableSnapshot): Promise<void> {
    const started = performance.now();
    this.golden?.used(snap.id);
    try {
      const clone = await this.loadFromSnapshot(s, snap);
      let identity = "none";
      if (s.agent) {
        const result = await s.agent.setIdentity(
          { hostname: s.id, seed: randomBytes(64), timeMs: Date.now() },
          s.lifetime.signal,
        );
        identity = result.simulated ? "simulated" : "applied";
      }
      if (s.state !== "starting") return;
      s.readyAt = new Date();
      await this.transition(s, "ready", {
        boot_ms: String(Math.round(performance.now() - started)),
        rootfs_clone: cloneKind(clone),
        created_from: "golden",
        identity,
      });
      void this.opts.cloner.prepare(snap.paths.rootfs);
      if (s.workload) this.track(this.runInitialWorkload(s, s.workload));
    } catch (err) {
      if (s.stopRequested || s.state !== "starting") return;
      await this.fail(
        s,
        `restore from golden snapshot ${snap.id} failed: ${errorText(err)}`,
        {},
        err,
      );
    }
  }

  // ── Startup / shutdown ────────────────────────────────────────────────

  /**
   * Startup, once, before serving (and before anything else uses the network
   * manager): rebuilds the registry from the records an earlier daemon left
   * (rules in recovery.ts, docs/architecture.md "Restarts") and starts the
   * network manager keeping the slots of live sandboxes.
   *
   * A live VM is re-adopted, under `recovery` bounds: its process checked
   * (pid + start time, `--id`, cwd), its exit watch, agent client, slot and
   * TTL (time left) re-armed; state and timestamps as recorded. `running`
   * comes back `ready`: the workload is no longer tracked (its output and
   * exit code are lost). A VM that was `starting` is failed (a boot cannot be
   * resumed), one `stopping` is killed and `stopped`, a golden build removed.
   * One that cannot be adopted is `failed` with the reason; startup goes on.
   */
  async recover(): Promise<RecoveryReport> {
    const scan = await scanSandboxes(this.opts.dataDir, this.log);
    const slotOf = (r: SandboxRecord) => (r.network === "tap" ? r.slotIndex : undefined);
    const net = await this.opts.network.recover(scan.live.flatMap((f) => slotOf(f.record) ?? []));
    const slots = new Map(net.kept.map((slot) => [slot.index, slot]));
    const adopted: string[] = [];
    const failed: string[] = [];
    for (const f of scan.final) this.registerFound(f, undefined);
    for (const f of scan.dead) {
      const s = this.registerFound(f, undefined);
      if (s.state === "stopping") {
        await this.transition(s, "stopped", {});
      } else {
        await this.fail(s, "firecracker exited while the daemon was down");
        failed.push(s.id);
      }
    }
    await adoptAll(
      scan.live,
      async (f, signal) => {
        const index = slotOf(f.record);
        const slot = index === undefined ? undefined : slots.get(index);
        const s = this.registerFound(f, slot);
        if (index !== undefined && !slot)
          throw new Error(`its network namespace (slot ${index}) is gone`);
        await this.adopt(s, f.record, signal);
        adopted.push(s.id);
      },
      async (f, err) => {
        const s = this.sandboxes.get(f.record.id);
        if (s) await this.fail(s, `re-adoption after a daemon restart failed: ${errorText(err)}`);
        failed.push(f.record.id);
      },
      this.opts.recovery,
    );
    // Armed only now: a TTL that ran out while the daemon was down must not race an adoption.
    for (const s of this.sandboxes.values()) {
      if (s.hidden) await this.remove(s.id, { force: true }).catch(() => {});
      else if (s.ttlSeconds > 0) this.armTtl(s);
    }
    const report = {
      adopted,
      failed,
      kept: scan.final.map((f) => f.record.id),
      removed: scan.removed,
    };
    if (scan.live.length + scan.dead.length + scan.final.length > 0)
      this.log.info(report, "sandboxes of an earlier daemon recovered");
    return report;
  }

  /** Registers a sandbox read from disk, in its recorded state, without an event. */
  private registerFound(f: FoundSandbox, slot: NetworkSlot | undefined): Sandbox {
    const { dir, record } = f;
    const s = newSandbox(
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
        diskBytes: apparentSize(dir.absolute.rootfs),
        dir,
        slot,
        hidden: record.hidden ?? false,
        // `running` is not tracked across a restart: the workload's session is gone.
        state: record.state === "running" ? "ready" : record.state,
        createdAt: new Date(record.createdAt),
      },
      this.log,
    );
    s.readyAt = record.readyAt ? new Date(record.readyAt) : undefined;
    s.lastExitedAt = record.lastExitedAt ? new Date(record.lastExitedAt) : undefined;
    s.lastExitCode = record.lastExitCode;
    s.error = record.error;
    if (s.state !== "starting") s.markSettled();
    this.sandboxes.set(s.id, s);
    return s;
  }

  /** Re-attaches a registered sandbox to its running Firecracker (see `recover`). */
  private async adopt(s: Sandbox, record: SandboxRecord, signal: AbortSignal): Promise<void> {
    const { agent, runtime } = this.opts;
    const pid = record.pid;
    if (pid === undefined) throw new Error("its record has no pid");
    const net = s.slot?.mode === "tap" ? s.slot : undefined;
    const { fc, state } = await adoptMicroVm(
      runtime,
      { dir: s.dir, net, target: { pid, startTime: record.pidStartTime } },
      signal,
    );
    s.fc = fc;
    this.watchExit(s, fc);
    if (s.state === "stopping") {
      s.stopRequested = true;
      s.lifetime.abort();
      fc.kill();
      await this.releaseVm(s);
      await this.transition(s, "stopped", {});
      return;
    }
    if (s.state === "starting" || state === "not-started") {
      await this.fail(s, "boot interrupted by a daemon restart");
      return;
    }
    if (state === "resumed")
      s.log.warn({ vmState: "Paused" }, "resumed a VM left paused by a checkpoint cut short");
    if (agent.readiness === "agent") {
      s.agent = new AgentClient({
        endpoint: { kind: "vsock", udsPath: s.dir.absolute.vsockSocket, port: agent.port },
        requestTimeoutMs: agent.callTimeoutMs,
        spareConnection: true,
      });
    }
    if (record.state === "running") {
      s.log.info(
        { recordedState: record.state },
        "a workload was running when the daemon stopped: its exit code is unknown",
      );
    }
    // The record gains this process's start time if an older daemon wrote it.
    this.track(this.persist(s));
  }

  /** Refuses new work; with `stopSandboxes`, stops and removes every sandbox. */
  async close(options: { stopSandboxes: boolean }): Promise<void> {
    this.closed = true;
    this.golden?.close();
    if (options.stopSandboxes) {
      await Promise.all(
        [...this.sandboxes.values()].map((s) =>
          this.remove(s.id, { force: true }).catch((err: unknown) =>
            s.log.error({ err }, "removal at shutdown failed"),
          ),
        ),
      );
    } else {
      // Left running for the next daemon, which re-adopts them: let go of every handle.
      for (const s of this.sandboxes.values()) {
        s.ttlTimer?.clear();
        s.agent?.close();
        s.fc?.detach();
      }
    }
    await Promise.allSettled([...this.background]);
  }

  // ── Internals ──────────────────────────────────────────────────────────

  private get(id: string): Sandbox {
    const s = this.sandboxes.get(id);
    if (!s) throw new NotFoundError("sandbox", id);
    return s;
  }

  /**
   * The one place state changes: checks the state machine, persists the
   * record, publishes the event (named after the new state unless `action`).
   */
  private async transition(
    s: Sandbox,
    to: SandboxStateName,
    attrs: Record<string, string>,
    action: EventAction = to as EventAction,
    extraAttrs: Record<string, string> = {},
  ): Promise<void> {
    assertTransition(s.id, s.state, to);
    if (s.state === "starting") s.markSettled();
    // ready ⇄ running churns with every command and means nothing to a restarted
    // daemon (both are "VM alive"): only lifecycle changes are written.
    const churn =
      (s.state === "ready" && to === "running") || (s.state === "running" && to === "ready");
    s.state = to;
    // The record says it before any client is told: a daemon killed right after a `ready`
    // event used to come back with the record still `starting` and fail the sandbox.
    if (!churn) await this.persist(s);
    this.publish(s, action, { ...attrs, ...extraAttrs });
  }

  private publish(s: Sandbox, action: EventAction, attributes: Record<string, string>): void {
    if (!s.hidden) this.bus.publish({ sandboxId: s.id, action, timestampNs: nowNs(), attributes });
    // running/idle come with every Run and Exec (the rpc log line already has the call):
    // logged at debug so a busy sandbox does not pay two log writes per command.
    if (action === "running" || action === "idle") {
      s.log.debug({ action, ...attributes }, "sandbox event");
    } else s.log.info({ action, ...attributes }, "sandbox event");
  }

  /**
   * Writes the sandbox's record (atomically: temp + fsync + rename) behind the
   * state change, off the request path: writes to one sandbox are serialized
   * and coalesced, so the file always ends with the latest state. Resolves
   * when the latest state is on disk.
   */
  private persist(s: Sandbox): Promise<void> {
    if (s.removing) return Promise.resolve(); // the record goes with the directory
    if (s.persisting) {
      s.persistDirty = true;
      return s.persisting;
    }
    s.persisting = (async () => {
      do {
        s.persistDirty = false;
        await this.writeRecord(s);
      } while (s.persistDirty);
    })().finally(() => {
      s.persisting = undefined;
    });
    return s.persisting;
  }

  private async writeRecord(s: Sandbox): Promise<void> {
    const record: SandboxRecord = {
      formatVersion: 1,
      id: s.id,
      state: s.state,
      requestKey: s.requestKey,
      labels: s.labels,
      kernel: s.kernel,
      rootfs: s.rootfs,
      bootArgs: s.bootArgs,
      vcpus: s.vcpus,
      memoryMib: s.memoryMib,
      network: s.network,
      slotIndex: s.slot?.mode === "tap" ? s.slot.index : undefined,
      ttlSeconds: s.ttlSeconds,
      workload: s.workload,
      pid: s.fc?.pid,
      pidStartTime: s.fc?.startTime,
      ...(s.hidden && { hidden: true }),
      createdFrom: s.createdFrom,
      snapshotId: s.snapshotId,
      createdAt: s.createdAt.toISOString(),
      readyAt: s.readyAt?.toISOString(),
      lastExitedAt: s.lastExitedAt?.toISOString(),
      lastExitCode: s.lastExitCode,
      error: s.error,
    };
    try {
      await s.dir.writeRecord(record);
    } catch (err) {
      // The directory is gone only while the sandbox is being removed.
      if (!s.removing) s.log.error({ err }, "writing the sandbox record failed");
    }
  }

  /** The sandbox as clients see it: the same frozen object as long as nothing in it changed. */
  private view(s: Sandbox): SandboxView {
    const last = this.views.get(s);
    if (
      last !== undefined &&
      last.view.state === s.state &&
      last.view.readyAt === s.readyAt &&
      last.view.lastExitedAt === s.lastExitedAt &&
      last.view.lastExitCode === s.lastExitCode &&
      last.view.error === s.error &&
      last.slot === s.slot &&
      last.pid === s.fc?.pid
    ) {
      return last.view;
    }
    const view = Object.freeze(this.buildView(s));
    if (view.network !== undefined) Object.freeze(view.network);
    this.views.set(s, { view, slot: s.slot, pid: s.fc?.pid });
    return view;
  }

  private buildView(s: Sandbox): SandboxView {
    const slot = s.slot?.mode === "tap" ? s.slot : undefined;
    return {
      id: s.id,
      state: s.state,
      labels: s.labels,
      vcpus: s.vcpus,
      memoryMib: s.memoryMib,
      network: slot && {
        ipAddress: slot.hostIp,
        gateway: slot.gatewayIp,
        tapName: slot.tapName,
        guestIp: slot.guestIp,
        netns: slot.netns,
      },
      kernel: this.imageName(s.kernel),
      rootfs: this.imageName(s.rootfs),
      bootArgs: s.bootArgs,
      createdAt: s.createdAt,
      readyAt: s.readyAt,
      lastExitedAt: s.lastExitedAt,
      lastExitCode: s.lastExitCode,
      error: s.error,
      createdFrom: s.createdFrom,
      snapshotId: s.snapshotId,
      pid: this.opts.exposeHostDetails ? s.fc?.pid : undefined,
      expiresAt:
        s.ttlSeconds > 0 ? new Date(s.createdAt.getTime() + s.ttlSeconds * 1000) : undefined,
    };
  }

  /**
   * How views name an image: its name under images_dir unless host details
   * are exposed (a path outside images_dir is the client's own input).
   */
  private imageName(path: string): string {
    if (this.opts.exposeHostDetails) return path;
    const rel = relative(this.opts.imagesDir, path);
    return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
  }

  private snapshotView(e: SnapshotEntry): SnapshotView {
    const v = snapshotView(e);
    return this.opts.exposeHostDetails ? v : { ...v, dir: relative(this.opts.dataDir, e.dir) };
  }

  /** Keeps a background task until it settles (close() awaits them) and logs its failure. */
  private track(p: Promise<unknown>): void {
    this.background.add(p);
    const forget = () => this.background.delete(p);
    p.then(forget, (err: unknown) => {
      forget();
      this.log.error({ err }, "background task failed");
    });
  }
}

/** Bytes a snapshot's data files take (apparent sizes from its meta; 0 when unreadable). */
function snapshotBytes(e: SnapshotEntry): number {
  return e.meta ? Object.values(e.meta.files).reduce((n, f) => n + f.size, 0) : 0;
}

/** Apparent size of a file, 0 when it cannot be read. */
function apparentSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function snapshotView(e: SnapshotEntry): SnapshotView {
  const meta = e.meta;
  const size = snapshotBytes(e);
  return {
    id: e.id,
    originSandboxId: meta?.originSandboxId ?? "",
    name: meta?.name ?? "",
    labels: meta?.labels ?? {},
    dir: e.dir,
    createdAt: meta ? new Date(meta.createdAt) : new Date(0),
    usable: e.state === "usable",
    unusableReason: e.state === "unusable" ? e.reason : undefined,
    sizeBytes: size,
  };
}

function exitAttributes(exit: {
  code: number | null;
  signal: string | null;
}): Record<string, string> {
  return {
    ...(exit.code !== null && { exit_code: String(exit.code) }),
    ...(exit.signal !== null && { signal: exit.signal }),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function signalName(n: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0];
}

/** The `rootfs_clone` event attribute: how the sandbox's writable disk was made. */
function cloneKind(r: CloneResult): string {
  return r.spare ? "spare" : r.method;
}

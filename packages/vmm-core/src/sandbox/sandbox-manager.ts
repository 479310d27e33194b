import type { Socket } from "node:net";
import { BackgroundTasks, type Logger } from "../internal/index.js";
import type { NetworkPolicy } from "../network/index.js";
import { Admission, type CommittedUsage } from "./admission.js";
import type { SandboxContext } from "./context.js";
import { SandboxFiles } from "./files.js";
import { type GoldenBuilder, GoldenPool } from "./golden-pool.js";
import { MAX_STOP_TIMEOUT_SECONDS, SandboxLifecycle } from "./lifecycle.js";
import { compareByCreation } from "./list-order.js";
import { NetworkPolicies } from "./network-policies.js";
import type { SandboxDefaults, SandboxManagerOptions } from "./options.js";
import { PauseResume } from "./pause-resume.js";
import { type PortExposure, PortExposures } from "./port-exposures.js";
import type { ProcessTarget, ProcessView } from "./process-table.js";
import { Processes } from "./processes.js";
import { type RecoveryReport, recoverSandboxes } from "./recovery.js";
import { validateLabels } from "./request-limits.js";
import { type RestoreRequest, SandboxFactory } from "./sandbox-factory.js";
import { SandboxRegistry } from "./sandbox-registry.js";
import { type CheckpointRequest, SnapshotService } from "./snapshot-service.js";
import { vmIsAlive } from "./state-machine.js";
import { type CreateOutcome, CreateOutcomes, type SandboxUsage } from "./telemetry.js";
import type {
  CreateSandboxSpec,
  EventAction,
  ProcessSession,
  ProcessSpec,
  SandboxEvent,
  SandboxStateName,
  SandboxView,
  SnapshotView,
} from "./types.js";
import { Views } from "./views.js";
import { Workloads } from "./workloads.js";

export type { RecoveryReport, SandboxDefaults, SandboxManagerOptions };
export { MAX_STOP_TIMEOUT_SECONDS };

/**
 * The sandbox API of vmm-core, one method per sandbox.v1 call. It wires the
 * modules that do the work and owns nothing else (docs/architecture.md):
 *
 * - {@link SandboxRegistry}: the sandboxes, transitions, records, events;
 * - {@link SandboxFactory}: Create and Restore, with an undo per resource;
 * - {@link SandboxLifecycle}: Stop, failure, Remove, the exit watch, TTLs;
 * - {@link Workloads}: Run and Exec through the agent;
 * - {@link Processes}: ListProcesses and SignalProcess over what Workloads tracks;
 * - {@link PauseResume}: Pause, Resume and auto-pause;
 * - {@link SnapshotService}: Checkpoint, ListSnapshots, DeleteSnapshot;
 * - {@link GoldenPool}: golden snapshots, with their own budget;
 * - {@link Admission}: limits, reserved before any await;
 * - `recoverSandboxes`: re-adoption at startup.
 *
 * VMs live under each sandbox's own `lifetime` signal, never a request's.
 */
export class SandboxManager {
  readonly #ctx: SandboxContext;
  readonly #tasks: BackgroundTasks;
  readonly #registry: SandboxRegistry;
  readonly #admission: Admission;
  readonly #lifecycle: SandboxLifecycle;
  readonly #workloads: Workloads;
  readonly #processes: Processes;
  /** File calls (SandboxFilesService). */
  readonly files: SandboxFiles;
  readonly #snapshots: SnapshotService;
  readonly #factory: SandboxFactory;
  readonly #pauses: PauseResume;
  readonly #policies: NetworkPolicies;
  readonly #ports: PortExposures;
  /** Golden snapshots (config `[golden]`); absent when off. */
  readonly #golden: GoldenPool | undefined;
  readonly #log: Logger;
  readonly #outcomes = new CreateOutcomes();
  #closing = false;

  constructor(options: SandboxManagerOptions) {
    this.#log = options.logger;
    this.#tasks = new BackgroundTasks(this.#log);
    this.#registry = new SandboxRegistry(this.#log);
    this.#ctx = {
      opts: options,
      registry: this.#registry,
      tasks: this.#tasks,
      views: new Views({
        imagesDir: options.imagesDir,
        dataDir: options.dataDir,
        exposeHostDetails: options.exposeHostDetails ?? false,
      }),
      log: this.#log,
      closing: () => this.#closing,
    };
    this.#admission = new Admission(options.limits, () => this.committedUsage());
    this.#lifecycle = new SandboxLifecycle(this.#ctx);
    this.#pauses = new PauseResume(this.#ctx, {
      admission: this.#admission,
      lifecycle: this.#lifecycle,
      factory: () => this.#factory,
    });
    this.#registry.onTransition = (s) => this.#pauses.watchIdle(s);
    this.#workloads = new Workloads(this.#ctx, (s) => this.#pauses.resume(s));
    this.#processes = new Processes(this.#ctx);
    this.files = new SandboxFiles(this.#ctx, this.#workloads, (s) => this.#pauses.watchIdle(s));
    this.#snapshots = new SnapshotService(this.#ctx, this.#admission);
    this.#policies = new NetworkPolicies(this.#ctx);
    this.#ports = new PortExposures(this.#ctx, { resume: (s) => this.#pauses.resume(s) });
    this.#golden =
      options.golden &&
      new GoldenPool({
        budget: options.golden,
        catalog: () => this.#snapshots.current,
        builder: this.goldenBuilder(),
        agentPort: options.agent.port,
        track: (p) => this.#tasks.track(p),
        log: this.#log,
      });
    this.#factory = new SandboxFactory(this.#ctx, {
      admission: this.#admission,
      snapshots: this.#snapshots,
      lifecycle: this.#lifecycle,
      workloads: this.#workloads,
      golden: () => this.#golden,
      policies: this.#policies,
      outcomes: this.#outcomes,
    });
  }

  // ── Queries ────────────────────────────────────────────────────────────

  inspect(id: string): SandboxView {
    return this.#ctx.views.sandbox(this.#registry.get(id));
  }

  /** The sandboxes matching `filter`, in `compareByCreation` order (oldest first). */
  list(filter: {
    state?: SandboxStateName;
    labels: Readonly<Record<string, string>>;
  }): SandboxView[] {
    validateLabels("labels", filter.labels);
    const wanted = Object.entries(filter.labels);
    const out: SandboxView[] = [];
    for (const s of this.#registry.all()) {
      if (s.spec.hidden) continue;
      if (filter.state !== undefined && s.shownState !== filter.state) continue;
      if (!wanted.every(([k, v]) => s.spec.labels[k] === v)) continue;
      out.push(this.#ctx.views.sandbox(s));
    }
    return out.sort(compareByCreation);
  }

  events(
    filter: { id?: string; action?: EventAction },
    signal: AbortSignal,
  ): AsyncIterable<SandboxEvent> {
    return this.#registry.events(filter, signal);
  }

  // ── Telemetry (metrics) ────────────────────────────────────────────────

  /**
   * What every user sandbox holds now: one pass over the registry, no I/O
   * (a metrics scrape reads this for hundreds of sandboxes).
   */
  usage(): SandboxUsage[] {
    const out: SandboxUsage[] = [];
    for (const s of this.#registry.all()) {
      if (s.spec.hidden) continue;
      out.push({
        id: s.id,
        state: s.shownState,
        pid: s.vm?.pid,
        diskBytes: s.spec.diskBytes + s.pausedBytes,
      });
    }
    return out;
  }

  /** Calls `observer` when a user sandbox's Create or Restore ends, until the returned function is called. */
  observeCreates(observer: (o: CreateOutcome) => void): () => void {
    return this.#outcomes.observe(observer);
  }

  /** Golden snapshots on disk now (0 while the catalog is still opening or golden is off). */
  goldenSnapshotCount(): number {
    let n = 0;
    for (const e of this.#snapshots.current?.list({ includeHidden: true }) ?? []) {
      if (e.meta?.goldenKey !== undefined) n++;
    }
    return n;
  }

  // ── Lifecycle ──────────────────────────────────────────────────────────

  /**
   * Registers a sandbox in state `starting` (network slot and directory
   * taken) and boots it in the background. Idempotent by caller id.
   */
  create(spec: CreateSandboxSpec, options: { signal?: AbortSignal } = {}): Promise<SandboxView> {
    return this.#factory.create(spec, options);
  }

  /** Graceful stop (Ctrl-Alt-Del), then SIGKILL after `timeoutSeconds`. Idempotent. */
  stop(id: string, timeoutSeconds: number): Promise<void> {
    return this.#lifecycle.stopById(id, timeoutSeconds);
  }

  /** Stops if needed, releases everything and deletes the sandbox. */
  async remove(
    id: string,
    options: { force: boolean },
    attrs: Record<string, string> = {},
  ): Promise<void> {
    await this.#lifecycle.remove(id, options, attrs);
  }

  /** `ready` → `paused` (memory and device state to disk, the process ended); idempotent. */
  pause(id: string): Promise<SandboxView> {
    return this.#pauses.pauseById(id);
  }

  /** `paused` → `ready`, once the agent answers; idempotent. */
  resume(id: string): Promise<SandboxView> {
    return this.#pauses.resumeById(id);
  }

  // ── Run / Exec ─────────────────────────────────────────────────────────

  /** Runs a command to completion; the sandbox is `running` meanwhile (Run while running fails). */
  run(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.#workloads.run(id, spec, signal);
  }

  /** Starts an interactive process (several may run at once, alongside a Run). */
  exec(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.#workloads.exec(id, spec, signal);
  }

  /** The processes started through Run, Exec or Create's cmd that still run, oldest first. */
  listProcesses(id: string): ProcessView[] {
    return this.#processes.list(id);
  }

  /** Signals the process group of the running process `target` names ("TERM", "KILL", …). */
  signalProcess(id: string, target: ProcessTarget, signal: string): Promise<void> {
    return this.#processes.signal(id, target, signal);
  }

  // ── Network: egress policy, ports ─────────────────────────────────────

  /** Replaces the sandbox's egress policy, live (one nft transaction in its namespace). */
  updateNetworkPolicy(id: string, policy: NetworkPolicy): Promise<void> {
    return this.#policies.update(id, policy);
  }

  /** A host address forwarding TCP to `guestPort` (the same one for a repeated call). */
  exposePort(id: string, guestPort: number, protocol: string): Promise<PortExposure> {
    return this.#ports.expose(id, guestPort, protocol);
  }

  /**
   * A connection to a guest port exposed with ExposePort, through its
   * forwarder's path (resumes a paused sandbox when auto_resume is on); cut
   * when the exposure closes. For the daemon's HTTP proxy.
   */
  connectExposedPort(id: string, guestPort: number): Promise<Socket> {
    return this.#ports.connect(id, guestPort);
  }

  // ── Snapshots ──────────────────────────────────────────────────────────

  checkpoint(req: Omit<CheckpointRequest, "hidden" | "goldenKey">): Promise<SnapshotView> {
    return this.#snapshots.checkpoint(req);
  }

  /** A new sandbox from a snapshot; ready when this returns. */
  restore(req: RestoreRequest): Promise<SandboxView> {
    return this.#factory.restore(req);
  }

  listSnapshots(filter: {
    originSandboxId?: string;
    labels: Readonly<Record<string, string>>;
  }): Promise<SnapshotView[]> {
    return this.#snapshots.list(filter);
  }

  deleteSnapshot(snapshotId: string): Promise<void> {
    return this.#snapshots.delete(snapshotId);
  }

  // ── Golden snapshots ───────────────────────────────────────────────────

  /**
   * Starts building the golden snapshot of the default spec (daemon startup) and
   * returns at once: neither startup nor any Create waits for it.
   */
  warmGolden(): void {
    if (!this.#golden || !this.#snapshots.enabled) return;
    this.#tasks.track(
      this.warmDefaultGolden().catch((err: unknown) =>
        this.#log.warn({ err }, "golden snapshot of the defaults not started"),
      ),
    );
  }

  private async warmDefaultGolden(): Promise<void> {
    await this.#snapshots.catalog();
    const r = this.#factory.resolveSpec({ labels: {}, ttlSeconds: 0 });
    const kernel = await this.#factory.image(r.kernel, "kernel", { trusted: true });
    const rootfs = await this.#factory.image(r.rootfs, "rootfs", { trusted: true });
    const golden = this.#golden?.lookup(r, kernel, rootfs) ?? {};
    if (golden.key !== undefined && !golden.snapshot)
      this.#golden?.ensure(golden.key, r, kernel, rootfs);
  }

  /** How the golden pool builds: a hidden sandbox, booted, checkpointed, removed. */
  private goldenBuilder(): GoldenBuilder {
    return {
      boot: async (id, spec, kernel, rootfs) => {
        await this.#factory.create(
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
        const s = this.#registry.get(id);
        await s.settled;
        if (s.state !== "ready")
          throw new Error(`golden sandbox ${id} is ${s.state}: ${s.error ?? ""}`);
      },
      checkpoint: async (id, goldenKey) =>
        (
          await this.#snapshots.checkpoint({
            sandboxId: id,
            name: id,
            labels: {},
            hidden: true,
            goldenKey,
          })
        ).id,
      remove: (id) => this.remove(id, { force: true }),
      deleteSnapshot: (snapshotId) => this.#snapshots.delete(snapshotId),
    };
  }

  // ── Startup / shutdown ────────────────────────────────────────────────

  /**
   * Startup, once, before serving: re-registers and re-adopts what an earlier
   * daemon left (rules in recovery.ts, docs/architecture.md "Restarts").
   */
  recover(): Promise<RecoveryReport> {
    return recoverSandboxes(this.#ctx, {
      lifecycle: this.#lifecycle,
      factory: this.#factory,
      watchIdle: (s) => this.#pauses.watchIdle(s),
      reopenPorts: (s) => this.#ports.reopen(s),
    });
  }

  /** Refuses new work; with `stopSandboxes`, stops and removes every sandbox. */
  async close(options: { stopSandboxes: boolean }): Promise<void> {
    this.#closing = true;
    this.#golden?.close();
    const all = [...this.#registry.all()];
    if (options.stopSandboxes) {
      await Promise.all(
        all.map((s) =>
          this.remove(s.id, { force: true }).catch((err: unknown) =>
            s.log.error({ err }, "removal at shutdown failed"),
          ),
        ),
      );
    } else {
      // Left running for the next daemon, which re-adopts them: let go of every handle.
      for (const s of all) {
        s.setTtlTimer(undefined);
        s.setIdleTimer(undefined);
        s.setAgent(undefined);
        s.takeVm()?.detach();
        // The record keeps the exposures: the next daemon reopens them.
        for (const p of s.ports.values())
          this.#tasks.track(p.forwarder?.close() ?? Promise.resolve());
      }
    }
    await this.#tasks.drain();
  }

  /**
   * Who uses the image with this manifest digest, for RemoveImage: `sandbox
   * <id>` (any state until removed), `snapshot <id>` (its Restores boot from
   * the image's defaults), `a Create in progress`, or undefined when nothing
   * does. Golden snapshots do not count: they are rebuilt when needed.
   */
  isImageInUse(manifestDigest: string): string | undefined {
    for (const s of this.#registry.all()) {
      if (!s.spec.hidden && s.spec.image?.manifestDigest === manifestDigest)
        return `sandbox ${s.id}`;
    }
    for (const e of this.#snapshots.current?.list() ?? []) {
      if (!e.meta?.hidden && e.meta?.image?.manifestDigest === manifestDigest)
        return `snapshot ${e.id}`;
    }
    if (this.#factory.creatingFromImage(manifestDigest)) return "a Create in progress";
    return undefined;
  }

  /** What registered sandboxes and committed snapshots hold (golden ones have their own budget). */
  private committedUsage(): CommittedUsage {
    let sandboxes = 0;
    let vcpus = 0;
    let memoryMib = 0;
    let diskBytes = this.#snapshots.diskBytes();
    for (const s of this.#registry.all()) {
      if (s.spec.hidden) continue;
      sandboxes++;
      diskBytes += s.spec.diskBytes + s.pausedBytes;
      if (vmIsAlive(s.state)) {
        vcpus += s.spec.vcpus;
        memoryMib += s.spec.memoryMib;
      }
    }
    return { sandboxes, vcpus, memoryMib, diskBytes };
  }
}

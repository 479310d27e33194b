import type { AgentClient } from "../agent/index.js";
import type { ImageProcessDefaults } from "../images/image-defaults.js";
import type { Logger, LongTimeout } from "../internal/index.js";
import type { NetworkPolicy, NetworkSlot, TapSlot } from "../network/index.js";
import type { SandboxDir } from "../storage/index.js";
import type { MicroVm } from "../vm/microvm.js";
import type { ExposedPort } from "./port-exposures.js";
import { ProcessTable } from "./process-table.js";
import { assertTransition } from "./state-machine.js";
import type {
  CreatedFrom,
  NetworkMode,
  ProcessSpec,
  SandboxStateName,
  SandboxView,
} from "./types.js";

/** Wire states in which the microVM may run. */
export type AliveState = "starting" | "ready" | "running" | "stopping";

/**
 * Where a sandbox is in its life: one value. The wire state (`state` in
 * sandbox.v1) is derived from it ({@link wireState}); the extra kinds say
 * what the wire does not:
 *
 * - `checkpointing`: ready, with the VM paused for a snapshot (workloads and
 *   other checkpoints wait);
 * - `running` counts the workloads (Run, Exec, initial command) running now;
 * - `stopping` holds the stop in progress (a second Stop joins it);
 * - `failing`: the failure is decided and the VM being released; clients see
 *   the state it failed from until `failed` is on disk;
 * - `pausing` (shown ready) and `resuming` (shown paused) hold the Pause or
 *   Resume in progress: other calls wait for it, then decide.
 */
export type SandboxPhase =
  | { readonly kind: "starting" }
  | { readonly kind: "ready" }
  | { readonly kind: "checkpointing" }
  | { readonly kind: "running"; readonly workloads: number }
  | { readonly kind: "pausing"; readonly done: Promise<void> }
  | { readonly kind: "paused"; readonly at: Date }
  | { readonly kind: "resuming"; readonly at: Date; readonly done: Promise<void> }
  | { readonly kind: "stopping"; readonly done: Promise<void> }
  | {
      readonly kind: "failing";
      readonly from: Exclude<AliveState, "stopping">;
      readonly error: string;
    }
  | { readonly kind: "stopped" }
  | { readonly kind: "failed"; readonly error: string };

/** The sandbox.v1 state a phase shows. */
export function wireState(phase: SandboxPhase): SandboxStateName {
  switch (phase.kind) {
    case "checkpointing":
    case "pausing":
      return "ready";
    case "resuming":
      return "paused";
    case "failing":
      return phase.from;
    default:
      return phase.kind;
  }
}

/** True while the microVM may run and nobody decided to end it (a stop or failure is not under way). */
export function isLive(
  phase: SandboxPhase,
): phase is Extract<SandboxPhase, { kind: "starting" | "ready" | "checkpointing" | "running" }> {
  return (
    phase.kind === "starting" ||
    phase.kind === "ready" ||
    phase.kind === "checkpointing" ||
    phase.kind === "running"
  );
}

/** What a sandbox is made of: fixed at Create/Restore (or read back from its record). */
export interface SandboxSpec {
  readonly id: string;
  /** Normalized request, compared for idempotent Create. */
  readonly requestKey: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly network: NetworkMode;
  /** 0 = never expires. */
  readonly ttlSeconds: number;
  readonly workload: ProcessSpec | undefined;
  readonly createdFrom: CreatedFrom;
  readonly snapshotId: string | undefined;
  readonly createdAt: Date;
  /** Apparent size of its writable disk (counts against limits.max_total_disk_gib). */
  readonly diskBytes: number;
  /** Internal (golden builds): not listed, no events, not counted against limits. */
  readonly hidden: boolean;
  /** Pause after this many seconds without a workload; 0 = never. */
  readonly autoPauseSeconds: number;
  /** The OCI image it was created from, with the process defaults of its config; undefined for a plain rootfs. */
  readonly image?: SandboxImage | undefined;
}

/** The OCI image a sandbox (or the sandbox a snapshot was taken of) was created from. */
export interface SandboxImage {
  /** The reference as resolved by the image store (e.g. `docker.io/library/busybox:latest`). */
  readonly reference: string;
  readonly manifestDigest: string;
  /** Defaults of Run, Exec and the initial command (image-defaults.ts). */
  readonly defaults: ImageProcessDefaults;
}

/** Timestamps and results a restarted daemon reads back from the record. */
export interface SandboxHistory {
  readonly readyAt?: Date | undefined;
  readonly lastExitedAt?: Date | undefined;
  readonly lastExitCode?: number | undefined;
}

/**
 * One sandbox: its spec, its phase, the resources it holds now (network
 * slot, microVM, agent client, TTL timer) and its lifetime signal. Owned by
 * the registry; the lifecycle, factory and workload modules change it through
 * these methods, and the registry's `transition` is the only way its wire
 * state changes.
 */
export class Sandbox {
  readonly id: string;
  readonly dir: SandboxDir;
  readonly log: Logger;
  /** Aborted when the sandbox is stopped, failed or removed: cancels a boot in progress. */
  readonly lifetime = new AbortController();
  /** Resolves when the sandbox leaves `starting` (ready, failed or stopping). */
  readonly settled: Promise<void>;
  /** Its processes started through Run, Exec or Create's cmd that still run (Workloads fills it). */
  readonly processes: ProcessTable;
  #markSettled: () => void = () => {};
  #phase: SandboxPhase;
  #slot: NetworkSlot | undefined;
  #vm: MicroVm | undefined;
  #agent: AgentClient | undefined;
  #ttlTimer: LongTimeout | undefined;
  #idleTimer: LongTimeout | undefined;
  /** File calls in flight (SandboxFiles): activity that keeps auto-pause away. */
  #fileCalls = 0;
  /** Apparent bytes of the files a Pause wrote (0 when none). */
  #pausedBytes = 0;
  #readyAt: Date | undefined;
  /** The egress policy in effect; undefined = none given (internet on, nothing denied). */
  #networkPolicy: NetworkPolicy | undefined;
  /** Exposed guest ports by guest port (ExposePort). */
  readonly #ports = new Map<number, ExposedPort>();
  #lastExitedAt: Date | undefined;
  #lastExitCode: number | undefined;
  /** The view of the current state, built once per change (List/Inspect reuse it). */
  #view: SandboxView | undefined;
  /** While a new state's record is being written: the state clients still see, and whose write. */
  #hold: { readonly shown: SandboxStateName; readonly write: number } | undefined;
  #writes = 0;

  constructor(
    readonly spec: SandboxSpec,
    init: {
      dir: SandboxDir;
      slot: NetworkSlot | undefined;
      phase?: SandboxPhase;
      history?: SandboxHistory;
      networkPolicy?: NetworkPolicy | undefined;
      /** Exposures recorded by an earlier daemon (their listeners are reopened by recovery). */
      ports?: readonly ExposedPort[];
      log: Logger;
    },
  ) {
    this.id = spec.id;
    this.processes = new ProcessTable(spec.id);
    this.dir = init.dir;
    this.#slot = init.slot;
    this.#phase = init.phase ?? { kind: "starting" };
    this.#readyAt = init.history?.readyAt;
    this.#lastExitedAt = init.history?.lastExitedAt;
    this.#lastExitCode = init.history?.lastExitCode;
    this.#networkPolicy = init.networkPolicy;
    for (const p of init.ports ?? []) this.#ports.set(p.guestPort, p);
    this.log = init.log.child({ sandboxId: spec.id });
    this.settled = new Promise<void>((resolve) => {
      this.#markSettled = resolve;
    });
    if (this.#phase.kind !== "starting") this.#markSettled();
  }

  get phase(): SandboxPhase {
    return this.#phase;
  }

  /** The wire state. */
  get state(): SandboxStateName {
    return wireState(this.#phase);
  }

  /**
   * The state clients see (views, List filters): the wire state once its
   * record is on disk. A client that saw a state can count on a daemon
   * killed right then coming back with it (restart rules).
   */
  get shownState(): SandboxStateName {
    return this.#hold?.shown ?? this.state;
  }

  /**
   * Keeps showing `shown` until the write this returns is released (the
   * first of overlapping writes decides what is shown until the last ends).
   */
  holdShownState(shown: SandboxStateName): number {
    const write = ++this.#writes;
    this.#hold = { shown: this.#hold?.shown ?? shown, write };
    this.#view = undefined;
    return write;
  }

  /** The record of write `write` is on disk: show the current state unless a later write holds it. */
  releaseShownState(write: number): void {
    if (this.#hold?.write !== write) return;
    this.#hold = undefined;
    this.#view = undefined;
  }

  /** The failure text (failing or failed). */
  get error(): string | undefined {
    const p = this.#phase;
    return p.kind === "failing" || p.kind === "failed" ? p.error : undefined;
  }

  get slot(): NetworkSlot | undefined {
    return this.#slot;
  }

  /** The slot when it is a TAP one (mode tap). */
  get tap(): TapSlot | undefined {
    return this.#slot?.mode === "tap" ? this.#slot : undefined;
  }

  get vm(): MicroVm | undefined {
    return this.#vm;
  }

  get agent(): AgentClient | undefined {
    return this.#agent;
  }

  get readyAt(): Date | undefined {
    return this.#readyAt;
  }

  get lastExitedAt(): Date | undefined {
    return this.#lastExitedAt;
  }

  get lastExitCode(): number | undefined {
    return this.#lastExitCode;
  }

  /**
   * Sets the phase (the registry's `transition` calls this after checking
   * the state machine). `enter` without the registry is for changes the
   * wire does not see (ready ⇄ checkpointing, the workload count, → failing).
   */
  enter(next: SandboxPhase, options: { wireChange?: boolean } = {}): void {
    const from = this.state;
    const to = wireState(next);
    if (options.wireChange) assertTransition(this.id, from, to);
    else if (from !== to) {
      throw new Error(`sandbox ${this.id}: ${from} → ${to} must go through the registry`);
    }
    if (from === "starting" && to !== "starting") this.#markSettled();
    this.#phase = next;
    this.#view = undefined;
  }

  /** Back to `ready` after a checkpoint, unless a Stop or failure moved it on meanwhile. */
  endCheckpoint(): void {
    if (this.#phase.kind === "checkpointing") this.enter({ kind: "ready" });
  }

  /** Holds the microVM (boot, restore or adoption gave it). */
  attachVm(vm: MicroVm): void {
    this.#vm = vm;
    this.#view = undefined;
  }

  /** Lets go of the microVM handle and returns it (the caller disposes or detaches it). */
  takeVm(): MicroVm | undefined {
    const vm = this.#vm;
    this.#vm = undefined;
    this.#view = undefined;
    return vm;
  }

  /** Gives up the network slot and returns it (the caller releases it). */
  takeSlot(): NetworkSlot | undefined {
    const slot = this.#slot;
    this.#slot = undefined;
    this.#view = undefined;
    return slot;
  }

  setAgent(agent: AgentClient | undefined): void {
    this.#agent?.close();
    this.#agent = agent;
  }

  /** Replaces the TTL timer (clearing the previous one). */
  setTtlTimer(timer: LongTimeout | undefined): void {
    this.#ttlTimer?.clear();
    this.#ttlTimer = timer;
  }

  /** Replaces the auto-pause timer (clearing the previous one). */
  setIdleTimer(timer: LongTimeout | undefined): void {
    this.#idleTimer?.clear();
    this.#idleTimer = timer;
  }

  /** File calls in flight (SandboxFiles); auto-pause waits while any runs. */
  get fileCalls(): number {
    return this.#fileCalls;
  }

  /** Counts a file call as started (+1) or ended (-1). */
  countFileCall(delta: 1 | -1): void {
    this.#fileCalls = Math.max(0, this.#fileCalls + delta);
  }

  get pausedBytes(): number {
    return this.#pausedBytes;
  }

  setPausedBytes(bytes: number): void {
    this.#pausedBytes = bytes;
    this.#view = undefined;
  }

  /** When it was paused (paused or resuming). */
  get pausedAt(): Date | undefined {
    const p = this.#phase;
    return p.kind === "paused" || p.kind === "resuming" ? p.at : undefined;
  }

  /** The egress policy in effect; undefined = none given (internet on, nothing denied). */
  get networkPolicy(): NetworkPolicy | undefined {
    return this.#networkPolicy;
  }

  /** Records the policy just applied to the slot. */
  setNetworkPolicy(policy: NetworkPolicy): void {
    this.#networkPolicy = policy;
    this.#view = undefined;
  }

  /** The exposed ports, by guest port. */
  get ports(): ReadonlyMap<number, ExposedPort> {
    return this.#ports;
  }

  setPort(port: ExposedPort): void {
    this.#ports.set(port.guestPort, port);
    this.#view = undefined;
  }

  /** Forgets every exposed port and returns them (the caller closes their listeners). */
  takePorts(): ExposedPort[] {
    const ports = [...this.#ports.values()];
    this.#ports.clear();
    this.#view = undefined;
    return ports;
  }

  markReady(at = new Date()): void {
    this.#readyAt = at;
    this.#view = undefined;
  }

  recordExit(exitCode: number, at = new Date()): void {
    this.#lastExitCode = exitCode;
    this.#lastExitedAt = at;
    this.#view = undefined;
  }

  /**
   * The view of the sandbox now: the same frozen object until something about
   * it changes (List and Inspect callers may cache work keyed by it).
   */
  view(build: (s: Sandbox) => SandboxView): SandboxView {
    this.#view ??= Object.freeze(build(this));
    return this.#view;
  }
}

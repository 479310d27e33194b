import { AlreadyExistsError, InvalidArgumentError, VmmError } from "../errors.js";
import { quote } from "../internal/index.js";

/** A process started through Run, Exec or Create's cmd that still runs, as ListProcesses shows it. */
export interface ProcessView {
  /** Pid in the guest (the agent's STARTED). */
  readonly pid: number;
  /** The argv as requested. */
  readonly cmd: readonly string[];
  /** Its tag; undefined when started without one. */
  readonly tag: string | undefined;
  /** When the agent reported it started. */
  readonly startedAt: Date;
  readonly tty: boolean;
}

/** One running process in a {@link ProcessTable}: its view and how to signal its group. */
export interface TrackedProcess extends ProcessView {
  /** Sends Linux signal `signal` to the process group (the agent's SIGNAL frame). */
  readonly kill: (signal: number) => Promise<void>;
}

/** Finds a process by guest pid or by tag (SignalProcess). */
export type ProcessTarget = { readonly pid: number } | { readonly tag: string };

/** Longest tag, in characters (all ASCII). */
export const MAX_TAG_LENGTH = 64;
const TAG = /^[A-Za-z0-9._-]{1,64}$/;
const DIGITS = /^[0-9]+$/;

/**
 * Checks a Run/Exec tag: 1-64 characters of [A-Za-z0-9._-], not only digits
 * (so `vmm kill <id> 1234` always means a pid).
 */
export function validateTag(tag: string): void {
  if (!TAG.test(tag)) {
    throw new InvalidArgumentError(
      "tag",
      `must be 1-${MAX_TAG_LENGTH} characters of letters, digits, '.', '_' and '-', got ${quote(tag)}`,
    );
  }
  if (DIGITS.test(tag)) {
    throw new InvalidArgumentError(
      "tag",
      `must not be only digits (a number means a pid), got ${quote(tag)}`,
    );
  }
}

/** No running process of the sandbox has that pid or tag (NOT_FOUND). */
export class ProcessNotFoundError extends VmmError {
  readonly sandboxId: string;
  constructor(sandboxId: string, target: ProcessTarget) {
    super(
      "not_found",
      "pid" in target
        ? `sandbox ${quote(sandboxId)} has no running process with pid ${target.pid}`
        : `sandbox ${quote(sandboxId)} has no running process tagged ${quote(target.tag)}`,
      {
        hint: "it may have exited already; ListProcesses (vmm ps) shows the processes that still run",
      },
    );
    this.sandboxId = sandboxId;
  }
}

/**
 * The processes of one sandbox that were started through Run, Exec or
 * Create's cmd and still run, by pid and by tag.
 *
 * Invariants: a tag belongs to at most one process or start in progress
 * (claimed before the agent is asked, so two concurrent starts cannot both
 * take it); a process is in the table from its STARTED until its EXIT is
 * read, or its session ends without one (client gone, sandbox ended). A pid
 * maps to the latest process reported with it (a hostile or recycled pid
 * cannot make `delete` of the older one drop the newer).
 */
export class ProcessTable {
  readonly #sandboxId: string;
  readonly #byPid = new Map<number, TrackedProcess>();
  /** Tag → its process, or null while the start that claimed it is under way. */
  readonly #byTag = new Map<string, TrackedProcess | null>();
  /** Every tracked process in start order (ListProcesses' order). */
  readonly #all = new Set<TrackedProcess>();

  constructor(sandboxId: string) {
    this.#sandboxId = sandboxId;
  }

  /** Number of tracked processes. */
  get size(): number {
    return this.#all.size;
  }

  /**
   * Reserves `tag` for a start in progress; throws AlreadyExistsError when a
   * running process or another start holds it. Undo with {@link releaseTag}
   * if the start fails; {@link add} turns the claim into the process.
   */
  claimTag(tag: string): void {
    const holder = this.#byTag.get(tag);
    if (holder !== undefined) {
      throw new AlreadyExistsError(
        holder === null
          ? `tag ${quote(tag)} is being used by a process starting in sandbox ${quote(this.#sandboxId)}`
          : `tag ${quote(tag)} is used by running process ${holder.pid} in sandbox ${quote(this.#sandboxId)}; tags are unique among running processes`,
      );
    }
    this.#byTag.set(tag, null);
  }

  /** Gives back a claim whose start failed (no-op once a process holds the tag). */
  releaseTag(tag: string): void {
    if (this.#byTag.get(tag) === null) this.#byTag.delete(tag);
  }

  /** Tracks a started process (its tag, if any, was claimed). */
  add(p: TrackedProcess): void {
    this.#all.add(p);
    this.#byPid.set(p.pid, p);
    if (p.tag !== undefined) this.#byTag.set(p.tag, p);
  }

  /** Stops tracking `p` (its EXIT was read or its session ended); idempotent. */
  delete(p: TrackedProcess): void {
    if (!this.#all.delete(p)) return;
    if (this.#byPid.get(p.pid) === p) this.#byPid.delete(p.pid);
    if (p.tag !== undefined && this.#byTag.get(p.tag) === p) this.#byTag.delete(p.tag);
  }

  /** The process with that pid or tag; throws ProcessNotFoundError when none runs. */
  find(target: ProcessTarget): TrackedProcess {
    const p = "pid" in target ? this.#byPid.get(target.pid) : this.#byTag.get(target.tag);
    if (!p) throw new ProcessNotFoundError(this.#sandboxId, target);
    return p;
  }

  /** Views of the tracked processes, oldest first. */
  list(): ProcessView[] {
    const out: ProcessView[] = [];
    for (const p of this.#all) {
      out.push({ pid: p.pid, cmd: p.cmd, tag: p.tag, startedAt: p.startedAt, tty: p.tty });
    }
    return out;
  }
}

import { ResourceExhaustedError } from "../errors.js";
import type { SandboxLimits } from "./limits.js";

/** What a new sandbox (or snapshot) will hold. */
export interface Demand {
  /** 0 for a checkpoint (no new VM). */
  readonly vcpus: number;
  readonly memoryMib: number;
  /** Apparent bytes of the files it adds under data_dir (disk clone, snapshot files). */
  readonly diskBytes: number;
}

/** What registered sandboxes and committed snapshots hold now (from the registry and catalog). */
export interface CommittedUsage {
  /** Sandboxes in the registry that count against `max_sandboxes` (any state). */
  readonly sandboxes: number;
  /** vCPUs and memory of sandboxes whose microVM is alive. */
  readonly vcpus: number;
  readonly memoryMib: number;
  /** Apparent bytes under data_dir: sandbox disks and snapshot files. */
  readonly diskBytes: number;
}

/**
 * A held admission. `registered()` once the sandbox is in the registry (from
 * then on it counts there); `settled()` once its boot or restore finished
 * (it stops counting as a concurrent create). Disposing releases whatever
 * is still held, so `using r = admission.reserve(…)` gives it back on any
 * failure.
 */
export interface Reservation extends Disposable {
  registered(): void;
  settled(): void;
}

interface Held {
  readonly demand: Demand;
  readonly sandbox: boolean;
}

/**
 * Admission control for Create, Restore and Checkpoint.
 *
 * Capacity is reserved synchronously, in the same turn as the check: a
 * request that passed admission is counted before its first `await`, so
 * concurrent requests cannot all pass a check that only counted registered
 * sandboxes (20 parallel Creates against max_sandboxes = 3 made 20).
 * Reservations count until the sandbox is registered (then the registry
 * counts it) or the request fails.
 */
export class Admission {
  readonly #limits: SandboxLimits;
  readonly #committed: () => CommittedUsage;
  readonly #held = new Set<Held>();
  #creating = 0;

  constructor(limits: SandboxLimits, committed: () => CommittedUsage) {
    this.#limits = limits;
    this.#committed = committed;
  }

  /** Sandboxes being created or restored now. */
  get creating(): number {
    return this.#creating;
  }

  /**
   * Reserves a new sandbox's share (Create, Restore). Throws
   * ResourceExhaustedError naming the limit that ran out.
   */
  reserveSandbox(demand: Demand): Reservation {
    const l = this.#limits;
    const used = this.#usage();
    if (used.sandboxes >= l.maxSandboxes) {
      throw new ResourceExhaustedError(
        `sandboxes: all ${l.maxSandboxes} allowed sandboxes exist (limits.max_sandboxes); remove some first`,
      );
    }
    if (this.#creating >= l.maxConcurrentCreates) {
      throw new ResourceExhaustedError(
        `concurrent creates: ${l.maxConcurrentCreates} sandboxes are booting (limits.max_concurrent_creates); retry shortly`,
      );
    }
    if (l.maxTotalVcpus > 0 && used.vcpus + demand.vcpus > l.maxTotalVcpus) {
      throw new ResourceExhaustedError(
        `vcpus: ${used.vcpus} of ${l.maxTotalVcpus} in use, ${demand.vcpus} more asked (limits.max_total_vcpus)`,
      );
    }
    if (l.maxTotalMemoryMib > 0 && used.memoryMib + demand.memoryMib > l.maxTotalMemoryMib) {
      throw new ResourceExhaustedError(
        `memory: ${used.memoryMib} of ${l.maxTotalMemoryMib} MiB in use, ${demand.memoryMib} MiB more asked (limits.max_total_memory_mib)`,
      );
    }
    this.#checkDisk(used.diskBytes, demand.diskBytes);
    return this.#hold({ demand, sandbox: true });
  }

  /** Reserves disk for a checkpoint's files; released once the catalog counts them (or on failure). */
  /**
   * vCPUs and memory for a paused sandbox coming back (its disk and its place
   * among `max_sandboxes` are already counted).
   */
  reserveResume(demand: { vcpus: number; memoryMib: number }): Reservation {
    const l = this.#limits;
    const used = this.#usage();
    if (l.maxTotalVcpus > 0 && used.vcpus + demand.vcpus > l.maxTotalVcpus) {
      throw new ResourceExhaustedError(
        `vcpus: ${used.vcpus} of ${l.maxTotalVcpus} in use, ${demand.vcpus} more asked to resume (limits.max_total_vcpus)`,
        { hint: "pause or remove other sandboxes first" },
      );
    }
    if (l.maxTotalMemoryMib > 0 && used.memoryMib + demand.memoryMib > l.maxTotalMemoryMib) {
      throw new ResourceExhaustedError(
        `memory: ${used.memoryMib} of ${l.maxTotalMemoryMib} MiB in use, ${demand.memoryMib} MiB more asked to resume (limits.max_total_memory_mib)`,
        { hint: "pause or remove other sandboxes first" },
      );
    }
    return this.#hold({ demand: { ...demand, diskBytes: 0 }, sandbox: false });
  }

  reserveDisk(diskBytes: number): Reservation {
    this.#checkDisk(this.#usage().diskBytes, diskBytes);
    return this.#hold({ demand: { vcpus: 0, memoryMib: 0, diskBytes }, sandbox: false });
  }

  #checkDisk(usedBytes: number, askedBytes: number): void {
    const max = this.#limits.maxTotalDiskBytes;
    if (max > 0 && usedBytes + askedBytes > max) {
      const gib = (n: number) => (n / 2 ** 30).toFixed(2);
      throw new ResourceExhaustedError(
        `disk: ${gib(usedBytes)} of ${gib(max)} GiB under data_dir in use, ${gib(askedBytes)} GiB more asked (limits.max_total_disk_gib)`,
        { hint: "remove sandboxes or delete snapshots first" },
      );
    }
  }

  #hold(h: Held): Reservation {
    this.#held.add(h);
    if (h.sandbox) this.#creating++;
    let booting = h.sandbox;
    const registered = () => {
      this.#held.delete(h);
    };
    const settled = () => {
      if (!booting) return;
      booting = false;
      this.#creating--;
    };
    return {
      registered,
      settled,
      [Symbol.dispose]: () => {
        registered();
        settled();
      },
    };
  }

  #usage(): CommittedUsage {
    const c = this.#committed();
    let sandboxes = c.sandboxes;
    let vcpus = c.vcpus;
    let memoryMib = c.memoryMib;
    let diskBytes = c.diskBytes;
    for (const h of this.#held) {
      if (h.sandbox) sandboxes++;
      vcpus += h.demand.vcpus;
      memoryMib += h.demand.memoryMib;
      diskBytes += h.demand.diskBytes;
    }
    return { sandboxes, vcpus, memoryMib, diskBytes };
  }
}

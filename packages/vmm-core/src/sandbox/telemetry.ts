import type { CreatedFrom, SandboxStateName } from "./types.js";

/** How a sandbox was made ready: booted, restored from a golden snapshot, or restored by Restore. */
export type CreatePath = CreatedFrom;

/**
 * One Create or Restore that ended: the sandbox became ready, or failed
 * before it did. `durationMs` runs from the call's start (Create's answer
 * comes earlier, at `starting`; this is what the client waits for `ready`).
 */
export interface CreateOutcome {
  readonly sandboxId: string;
  readonly path: CreatePath;
  readonly ok: boolean;
  readonly durationMs: number;
}

/** What a sandbox holds now, for metrics (no client-facing redaction: the daemon's own use). */
export interface SandboxUsage {
  readonly id: string;
  readonly state: SandboxStateName;
  /** Firecracker's pid while a VM runs (ready, running, stopping…), else undefined. */
  readonly pid: number | undefined;
  /** Disk the sandbox takes (as SandboxInfo.disk_bytes: apparent sizes, no directory walk). */
  readonly diskBytes: number;
}

/**
 * Tells observers about every Create/Restore outcome of user sandboxes
 * (golden builds are not reported). Observers run synchronously on the
 * sandbox's path and must be cheap; one that throws is dropped from the
 * report, never from the sandbox.
 */
export class CreateOutcomes {
  readonly #observers = new Set<(o: CreateOutcome) => void>();

  /** Calls `observer` for every outcome until the returned function is called. */
  observe(observer: (o: CreateOutcome) => void): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Reports `o` to every observer. */
  report(o: CreateOutcome): void {
    for (const observe of this.#observers) {
      try {
        observe(o);
      } catch {
        // Metrics must never fail a sandbox.
      }
    }
  }
}

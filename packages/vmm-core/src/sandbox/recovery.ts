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
 * This module reads and sorts; the manager re-registers (it owns the registry).
 */
import { readFileSync } from "node:fs";
import type { Logger } from "../internal/index.js";
import { SandboxDir } from "../storage/index.js";
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

import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { quote } from "../internal/index.js";
import type { SandboxContext } from "./context.js";
import { ProcessNotFoundError, type ProcessTarget, type ProcessView } from "./process-table.js";

/**
 * The signals SignalProcess sends, by wire name, with their Linux numbers
 * (the guest's numbering on x86_64 and aarch64, not the host's).
 */
export const PROCESS_SIGNALS = {
  HUP: 1,
  INT: 2,
  KILL: 9,
  USR1: 10,
  USR2: 12,
  TERM: 15,
  CONT: 18,
  STOP: 19,
} as const;

/** A signal name SignalProcess accepts. */
export type ProcessSignalName = keyof typeof PROCESS_SIGNALS;

const SIGNAL_LIST = Object.keys(PROCESS_SIGNALS).join(", ");

/** The Linux number of a SignalProcess signal name ("TERM" or "SIGTERM"; empty = TERM). */
export function parseProcessSignal(name: string): number {
  if (name === "") return PROCESS_SIGNALS.TERM;
  const bare = name.startsWith("SIG") ? name.slice(3) : name;
  if (Object.hasOwn(PROCESS_SIGNALS, bare)) return PROCESS_SIGNALS[bare as ProcessSignalName];
  throw new InvalidArgumentError(
    "signal",
    `unknown signal ${quote(name)}; use one of ${SIGNAL_LIST}`,
  );
}

/**
 * ListProcesses and SignalProcess: the processes each sandbox's
 * {@link ProcessTable} tracks (Workloads fills it). Both answer from the
 * daemon's table, never by asking the guest, so neither resumes a paused
 * sandbox.
 */
export class Processes {
  constructor(private readonly ctx: SandboxContext) {}

  /**
   * The running processes of sandbox `id`, oldest first; empty once it is
   * stopping, stopped or failed (its processes are gone with the VM).
   */
  list(id: string): ProcessView[] {
    const s = this.ctx.registry.get(id);
    switch (s.phase.kind) {
      case "stopping":
      case "failing":
      case "stopped":
      case "failed":
        return [];
      default:
        return s.processes.list();
    }
  }

  /**
   * Sends `signal` (see {@link parseProcessSignal}) to the process group of
   * the process `target` names. Resolves once the agent's socket took the
   * SIGNAL frame; the process's Run/Exec stream reports how it ended.
   */
  async signal(id: string, target: ProcessTarget, signal: string): Promise<void> {
    if ("pid" in target && (!Number.isInteger(target.pid) || target.pid < 1)) {
      throw new InvalidArgumentError("pid", `must be a positive guest pid, got ${target.pid}`);
    }
    const num = parseProcessSignal(signal);
    const s = this.ctx.registry.get(id);
    const p = s.phase;
    if (p.kind !== "ready" && p.kind !== "running" && p.kind !== "checkpointing") {
      const paused = p.kind === "paused" || p.kind === "pausing" || p.kind === "resuming";
      throw new FailedPreconditionError(
        `sandbox ${s.id} is ${s.state}; signals need a ready or running sandbox`,
        {
          hint: paused
            ? "a paused sandbox has no running processes (Pause needs none running); Resume it and start one"
            : "list its processes with ListProcesses (vmm ps) while it runs",
        },
      );
    }
    const proc = s.processes.find(target);
    try {
      await proc.kill(num);
    } catch (err) {
      // The session closed between the lookup and the write: the process has ended.
      if (err instanceof FailedPreconditionError) throw new ProcessNotFoundError(s.id, target);
      throw err;
    }
  }
}

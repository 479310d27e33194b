import { FailedPreconditionError } from "../errors.js";
import type { SandboxStateName } from "./types.js";

/**
 * The sandbox.v1 state machine (shared/spec/sandbox-v1-wire.md), the only
 * place transitions are decided:
 *
 *   starting ──► ready ──► running ──► ready      (workload exited)
 *                 │ ▲ │          │
 *        (pause)  ▼ │ │(resume)  │
 *               paused ─┴──────────┴──► stopping ──► stopped
 *   boot failure, VMM crash, resume failure ──► failed
 *
 * `stopped` and `failed` are final: a sandbox leaves them only by removal.
 */
const allowed: Readonly<Record<SandboxStateName, readonly SandboxStateName[]>> = {
  starting: ["ready", "stopping", "failed"],
  ready: ["running", "paused", "stopping", "failed"],
  running: ["ready", "stopping", "failed"],
  paused: ["ready", "stopping", "failed"],
  stopping: ["stopped", "failed"],
  stopped: [],
  failed: [],
};

export function canTransition(from: SandboxStateName, to: SandboxStateName): boolean {
  return allowed[from].includes(to);
}

/** Throws when `from → to` is not a transition of the state machine (a bug in the caller). */
export function assertTransition(id: string, from: SandboxStateName, to: SandboxStateName): void {
  if (!canTransition(from, to)) {
    throw new FailedPreconditionError(`sandbox ${id} cannot go from ${from} to ${to}`);
  }
}

/** States in which the microVM process is expected to be alive. */
export function vmIsAlive(state: SandboxStateName): boolean {
  return state === "starting" || state === "ready" || state === "running" || state === "stopping";
}

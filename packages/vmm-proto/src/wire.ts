/**
 * The sandbox.v1 contract's string lists (sandbox states, event actions),
 * defined once for every package: vmm-core (the state machine and events it
 * emits), vmm-grpc (filter validation), vmm-cli (flag choices, completion) and
 * tests. Hand-written and dependency-free, exported as `@vmm/proto/wire`, so
 * vmm-core can import it without pulling in generated code or protobuf.
 */

/**
 * The states of the sandbox.v1 contract, in the order a sandbox normally goes
 * through them; `paused` is in the binding spec ("Pause and resume").
 */
export const SANDBOX_STATES = [
  "starting",
  "ready",
  "running",
  "paused",
  "stopping",
  "stopped",
  "failed",
] as const;

/** One of {@link SANDBOX_STATES}. */
export type SandboxStateName = (typeof SANDBOX_STATES)[number];

/**
 * Event actions. The first eight are the sandbox.v1 contract; `paused` and
 * `resumed` are in the binding spec too; `checkpointed` and `restored` are
 * vmm additions (documented in the proto header).
 */
export const EVENT_ACTIONS = [
  "created",
  "ready",
  "running",
  "idle",
  "stopping",
  "stopped",
  "failed",
  "removed",
  "paused",
  "resumed",
  "checkpointed",
  "restored",
] as const;

/** One of {@link EVENT_ACTIONS}. */
export type EventAction = (typeof EVENT_ACTIONS)[number];

/** True when `value` is one of {@link SANDBOX_STATES}. */
export function isSandboxState(value: string): value is SandboxStateName {
  return (SANDBOX_STATES as readonly string[]).includes(value);
}

/** True when `value` is one of {@link EVENT_ACTIONS}. */
export function isEventAction(value: string): value is EventAction {
  return (EVENT_ACTIONS as readonly string[]).includes(value);
}

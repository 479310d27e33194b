// Public API of vmm-core. vmm-grpc and vmm-daemon import from here only.
export type { ErrorKind } from "./errors.js";
export {
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  isVmmError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  VmmError,
} from "./errors.js";
export type {
  CreatedFrom,
  CreateSandboxSpec,
  EventAction,
  NetworkMode,
  ProcessOutput,
  ProcessSession,
  ProcessSpec,
  SandboxEvent,
  SandboxNetworkView,
  SandboxStateName,
  SandboxView,
  SnapshotView,
} from "./sandbox/types.js";
export { EVENT_ACTIONS, isEventAction, isSandboxState, SANDBOX_STATES } from "./sandbox/types.js";

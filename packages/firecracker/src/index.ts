// Client: typed Firecracker v1.14.2 API, one method per operationId.

export type {
  ApiErrorBody,
  Balloon,
  BalloonStats,
  BalloonUpdate,
  BootSource,
  CpuTemplate,
  Drive,
  EntropyDevice,
  FirecrackerVersion,
  FullVmConfiguration,
  InstanceActionInfo,
  InstanceInfo,
  Logger,
  MachineConfiguration,
  MemoryBackend,
  Metrics,
  MmdsConfig,
  MmdsContents,
  NetworkInterface,
  NetworkOverride,
  PartialDrive,
  PartialNetworkInterface,
  RateLimiter,
  SnapshotCreateParams,
  SnapshotLoadParams,
  TokenBucket,
  Vm,
  Vsock,
} from "./api-types.js";
export type { CallOptions, FirecrackerClient, FirecrackerClientOptions } from "./client.js";
export { createFirecrackerClient } from "./client.js";
export {
  FirecrackerApiError,
  FirecrackerConnectionError,
  FirecrackerError,
  FirecrackerLaunchError,
} from "./errors.js";
export type { JailExport, JailFile, JailPaths } from "./jail-files.js";
export { jailPaths, linkIntoJail, linkOutOfJail } from "./jail-files.js";
// Launchers: start Firecracker directly or under the jailer.
export type {
  AdoptTarget,
  ExitStatus,
  FirecrackerLauncher,
  FirecrackerLogLevel,
  FirecrackerProcess,
  LaunchOptions,
  SeccompOptions,
  StopOptions,
} from "./launcher.js";
export { MINIMAL_FIRECRACKER_ENV } from "./launcher.js";
export type { DirectLauncherOptions } from "./launcher-direct.js";
export { createDirectLauncher } from "./launcher-direct.js";
export type {
  JailerLauncher,
  JailerLauncherOptions,
  JailerLaunchOptions,
} from "./launcher-jailer.js";
export { createJailerLauncher } from "./launcher-jailer.js";
export {
  checkUnixSocketPath,
  maxUnixSocketPathBytes,
  removeStaleSocket,
} from "./socket-path.js";

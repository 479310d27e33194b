// Public API of vmm-core. vmm-grpc and vmm-daemon import from here only.

export type {
  AgentEndpoint,
  AgentInfo,
  FileEvent,
  FileEventKind,
  FileInfo,
  FileType,
} from "./agent/index.js";
export { AgentClient, AgentFiles } from "./agent/index.js";
export type { ErrorKind } from "./errors.js";
export {
  AlreadyExistsError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  isVmmError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  VmmError,
} from "./errors.js";
export type { HostCheck, HostCheckInputs, JailerCheckInputs, KvmProbe } from "./host/index.js";
export { probeKvm, runHostChecks } from "./host/index.js";
export type {
  AgentBinarySource,
  ImageInUse,
  ImageProcessDefaults,
  ImagePullPolicy,
  ImagePullProgress,
  ImageReference,
  ImageRootfs,
  ImageRootfsBuilderOptions,
  ImageSource,
  ImageStoreOptions,
  LayerBlob,
  OciDescriptor,
  OciImageConfig,
  PulledImage,
  RegistryClientOptions,
  RegistryCredentials,
  ResolvedSandboxImage,
  SandboxImagesOptions,
} from "./images/index.js";
export {
  DEFAULT_MAX_LAYER_BYTES,
  IMAGE_REFERENCE_MAX_BYTES,
  ImageRootfsBuilder,
  ImageStore,
  OciLayoutImageSource,
  parseImageReference,
  SandboxImages,
  SUPPORTED_LAYER_MEDIA_TYPES,
  writeOciLayoutImage,
} from "./images/index.js";
export type { Logger } from "./internal/index.js";
/** Longest sandbox or snapshot id the daemon accepts. */
/** @private for vmm-grpc: a client value cut short for an error message. */
export { ID_MAX_LENGTH, quote } from "./internal/index.js";
export type {
  HostResolver,
  NetworkManager,
  NetworkManagerOptions,
  NetworkPolicy,
  NetworkPoolLevels,
  NetworkSlot,
  TapSlot,
} from "./network/index.js";
export {
  createDryRunCommandRunner,
  createNetworkManager,
  DEFAULT_NETWORK_POLICY,
  MAX_POLICY_ENTRIES,
} from "./network/index.js";
export type { WriteFileSpec } from "./sandbox/files.js";
export {
  checkPath,
  MAX_GUEST_PATH_BYTES,
  MAX_LIST_DEPTH,
  MAX_LIST_ENTRIES,
  SandboxFiles,
} from "./sandbox/files.js";
export type { SandboxLimits } from "./sandbox/limits.js";
export type { ListKey } from "./sandbox/list-order.js";
export { compareByCreation, compareListKeys } from "./sandbox/list-order.js";
export type { ProcessTarget, ProcessView } from "./sandbox/process-table.js";
export { MAX_TAG_LENGTH, ProcessNotFoundError } from "./sandbox/process-table.js";
export type { ProcessSignalName } from "./sandbox/processes.js";
export { PROCESS_SIGNALS } from "./sandbox/processes.js";
export {
  REQUEST_LIMITS,
  validateLabels,
  validateProcessSpec,
} from "./sandbox/request-limits.js";
export type { SandboxDefaults, SandboxManagerOptions } from "./sandbox/sandbox-manager.js";
export { SandboxManager } from "./sandbox/sandbox-manager.js";
export type { CreateOutcome, CreatePath, SandboxUsage } from "./sandbox/telemetry.js";
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
export type { SnapshotEntry, SnapshotMeta } from "./snapshot/index.js";
export { SnapshotCatalog } from "./snapshot/index.js";
export type { CloneMode, DiskCloner, SpareCloner } from "./storage/index.js";
export {
  createDiskCloner,
  FORBIDDEN_IMAGE_TREES,
  findInitProgram,
  isInside,
  openSpareCloner,
  prepareDataDir,
  resolveImage,
  SandboxDir,
} from "./storage/index.js";
export type { BootSpec, VmmRuntime } from "./vm/microvm.js";

export { type DataDirReport, prepareDataDir } from "./data-dir.js";
export { isDiskFull, mapDiskError } from "./disk-errors.js";
export { filesystemName } from "./filesystem.js";
export {
  FORBIDDEN_IMAGE_TREES,
  type ImageIdentity,
  imageRefused,
  isInside,
  type ResolvedImage,
  type ResolveImageOptions,
  resolveImage,
  sameImageIdentity,
} from "./image.js";
export {
  GUEST_KERNEL_REQUIRED,
  type KernelConfig,
  KernelConfigCheck,
  missingGuestKernelOptions,
  readKernelConfig,
} from "./kernel-config.js";
export { type LinkMethod, linkOrClone } from "./link-or-clone.js";
export { probeReflink, type ReflinkProbe } from "./probe-reflink.js";
export { findInitProgram, type InitProgram, RootfsInitCheck } from "./rootfs-init.js";
export {
  assertSocketPathsFit,
  longestSocketPathBytes,
  MAX_SOCKET_PATH_BYTES,
  maxSandboxIdLength,
  SANDBOX_FILES,
  SandboxDir,
  type SandboxFile,
  type SandboxPaths,
  sandboxesDir,
} from "./sandbox-dir.js";
export { openSpareCloner, type SpareCloner, type SpareClonerOptions } from "./spare-clones.js";
export {
  type CloneMethod,
  type CloneMode,
  type CloneResult,
  cloneFile,
  createDiskCloner,
  type DiskCloner,
} from "./storage.js";

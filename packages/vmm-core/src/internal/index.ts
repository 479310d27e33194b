// Private helpers shared inside vmm-core. Not re-exported by vmm-core's index.
export {
  isDeletingName,
  moveAside,
  removeDeletingLeftovers,
  removeDirAtomic,
  removeMatching,
} from "./atomic-delete.js";
export {
  fsyncDir,
  fsyncFile,
  readJsonFile,
  type WriteFileAtomicOptions,
  writeFileAtomic,
} from "./atomic-file.js";
export { BackgroundTasks } from "./background-tasks.js";
export { GUEST_TEXT_MAX_BYTES, sanitizeGuestText } from "./guest-text.js";
export { generateId, ID_MAX_LENGTH, type IdKind, isValidId, validateId } from "./ids.js";
export { KeyedMutex } from "./keyed-mutex.js";
export { type Logger, silentLogger } from "./logger.js";
export { type Deadline, deadlineAfter, type LongTimeout, setLongTimeout } from "./long-timeout.js";
export { QUOTE_MAX_CHARS, quote } from "./quote.js";
export { type FileDigest, sha256File } from "./sha256-file.js";

// Host-side client of the in-guest agent (docs/agent-protocol.md).
export type {
  AgentClientOptions,
  AgentIdentity,
  AgentInfo,
  EntropyMethod,
  IdentityResult,
  RunOptions,
  WaitReadyOptions,
} from "./agent-client.js";
export { AgentClient, hostDeadlineGraceMs } from "./agent-client.js";
export type {
  FileEvent,
  FileEventKind,
  FileInfo,
  FileType,
  ReadFileOptions,
  WriteFileOptions,
} from "./agent-files.js";
export { AgentFiles, TooManyEntriesError } from "./agent-files.js";
export type { ExitStatus, OutputEvent } from "./agent-process.js";
export { AgentProcess } from "./agent-process.js";
export type { AgentEndpoint } from "./dial.js";
export { describeEndpoint } from "./dial.js";
export {
  AgentError,
  AgentProtocolError,
  AgentTooOldError,
  AgentUnavailableError,
} from "./errors.js";
// For sibling packages and tests (fc-sim, fuzz-style specs): the wire format.
export type { Frame, Tlv } from "./frame.js";
export { decodeTlv, encodeFrame, FrameDecoder, TlvWriter } from "./frame.js";
export {
  AGENT_PROTOCOL_VERSION,
  AgentErrorCode,
  DEFAULT_AGENT_PORT,
  FrameType,
  IDENTITY_HOSTNAME_PATTERN,
  IDENTITY_SEED_MAX_BYTES,
  IDENTITY_SEED_MIN_BYTES,
  IdentitySetTag,
  IdentityTag,
  MAX_FRAME_LENGTH,
  RunTag,
} from "./protocol.js";

/**
 * Constants of the guest agent protocol, version 2 (docs/agent-protocol.md).
 * Version 2 adds the file operations (WRITE_FILE … WATCH); everything of
 * version 1 is unchanged, and the client still talks to version-1 agents
 * (file operations then fail with AgentTooOldError).
 * SET_IDENTITY is an optional version-1 operation (agent ≥ 0.2.0); older
 * agents answer it with ERROR(unsupported).
 * Frame: u32 BE length (type + payload), u8 type, payload; TLV payloads:
 * u8 tag, u32 BE length, value.
 */

/** Protocol version this client speaks. */
export const AGENT_PROTOCOL_VERSION = 2;

/** Lowest agent protocol version that serves file operations. */
export const FILES_PROTOCOL_VERSION = 2;

/** Guest vsock port the agent listens on unless the kernel cmdline has `vmm.agent_port=N`. */
export const DEFAULT_AGENT_PORT = 1024;

/** Largest value of a frame's length field (type + payload), in bytes: 1 MiB. */
export const MAX_FRAME_LENGTH = 1 << 20;

/** Bytes of stdin sent per STDIN frame. */
export const STDIN_CHUNK_BYTES = 64 * 1024;

/** Frame types (a const object: erasable syntax, no enum). */
export const FrameType = {
  hello: 0x01,
  health: 0x02,
  run: 0x03,
  setIdentity: 0x04,
  writeFile: 0x05,
  readFile: 0x06,
  listDir: 0x07,
  stat: 0x08,
  remove: 0x09,
  mkdir: 0x0a,
  watch: 0x0b,
  stdin: 0x10,
  resize: 0x11,
  signal: 0x12,
  fileData: 0x13,
  fileEnd: 0x14,
  helloReply: 0x81,
  info: 0x82,
  started: 0x83,
  identitySet: 0x84,
  fileInfo: 0x85,
  ok: 0x86,
  fileEvent: 0x87,
  stdout: 0x90,
  stderr: 0x91,
  exit: 0x92,
  fileReadData: 0x93,
  error: 0xff,
} as const;

/** TLV tags of a RUN request. */
export const RunTag = {
  arg: 1,
  env: 2,
  cwd: 3,
  user: 4,
  tty: 5,
  timeoutMs: 6,
  stdin: 7,
} as const;

/** TLV tags of a SET_IDENTITY request. */
export const IdentityTag = {
  hostname: 1,
  seed: 2,
  timeMs: 3,
} as const;

/** TLV tags of an IDENTITY_SET reply. */
export const IdentitySetTag = {
  hostname: 1,
  bootId: 2,
  simulated: 3,
  hostnameSet: 4,
  entropy: 5,
  clockSet: 6,
} as const;

/** Hostnames SET_IDENTITY accepts: 1–64 characters of [A-Za-z0-9-]. */
export const IDENTITY_HOSTNAME_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

/** Size limits of the SET_IDENTITY entropy seed, bytes. */
export const IDENTITY_SEED_MIN_BYTES = 16;
export const IDENTITY_SEED_MAX_BYTES = 512;

/** TLV tags of an INFO reply. */
export const InfoTag = {
  agentVersion: 1,
  protocolVersion: 2,
  bootId: 3,
  uptimeMs: 4,
  pid: 5,
  hostname: 6,
  mode: 7,
} as const;

/** TLV tags of an EXIT frame. */
export const ExitTag = {
  code: 1,
  signal: 2,
  timedOut: 3,
  error: 4,
} as const;

/** Codes carried by ERROR frames. */
export const AgentErrorCode = {
  protocol: 1,
  unsupportedVersion: 2,
  invalidArgument: 3,
  unsupported: 4,
  internal: 5,
  /** Protocol 2: the path (or a parent) does not exist. */
  notFound: 6,
  /** Protocol 2: the path is of the wrong kind or not allowed (is a directory, not empty, exists…). */
  failedPrecondition: 7,
  /** Protocol 2: the guest's disk (or quota) is full. */
  noSpace: 8,
  /** The guest ran out of memory, file descriptors or processes. */
  exhausted: 9,
  /** WATCH: the guest's inotify queue overflowed; events were lost and the watch ended. */
  eventsLost: 10,
} as const;

/** TLV tags of the file operation requests (one tag space for all of them). */
export const FileRequestTag = {
  path: 1,
  mode: 2,
  parents: 3,
  user: 4,
  offset: 5,
  length: 6,
  depth: 7,
  recursive: 8,
} as const;

/** TLV tags of a FILE_INFO frame. */
export const FileInfoTag = {
  path: 1,
  name: 2,
  type: 3,
  size: 4,
  mode: 5,
  mtimeNs: 6,
  symlinkTarget: 7,
} as const;

/** TLV tags of a FILE_EVENT frame. */
export const FileEventTag = {
  path: 1,
  kind: 2,
  timeNs: 3,
} as const;

/** Largest FILE_DATA payload the client sends, bytes. */
export const FILE_DATA_CHUNK_BYTES = 512 * 1024;

/**
 * File bytes in flight per transfer and direction on the host's side of the
 * agent connection: an upload's writes not yet taken by the socket, a
 * download's bytes read ahead of the consumer. A few chunks, so the guest and
 * the caller work at the same time instead of in turns; the bound on what a
 * transfer holds in memory there.
 */
export const FILE_IN_FLIGHT_BYTES = 1024 * 1024;

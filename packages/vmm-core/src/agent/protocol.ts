/**
 * Constants of the guest agent protocol, version 1 (docs/agent-protocol.md).
 * SET_IDENTITY is an optional version-1 operation (agent ≥ 0.2.0); older
 * agents answer it with ERROR(unsupported).
 * Frame: u32 BE length (type + payload), u8 type, payload; TLV payloads:
 * u8 tag, u32 BE length, value.
 */

/** Protocol version this client speaks. */
export const AGENT_PROTOCOL_VERSION = 1;

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
  stdin: 0x10,
  resize: 0x11,
  signal: 0x12,
  helloReply: 0x81,
  info: 0x82,
  started: 0x83,
  identitySet: 0x84,
  stdout: 0x90,
  stderr: 0x91,
  exit: 0x92,
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
} as const;

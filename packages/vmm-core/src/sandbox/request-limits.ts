import { InvalidArgumentError, UnimplementedError } from "../errors.js";
import { quote } from "../internal/index.js";
import type { CreateSandboxSpec, ProcessSpec } from "./types.js";

/**
 * Bounds on what one request may carry. Everything a client sends is kept in
 * records, events, snapshot metadata and List answers, or forwarded to the
 * guest agent (whose frames are at most 1 MiB), so each value is bounded in
 * count and bytes; a request past a bound fails with INVALID_ARGUMENT naming
 * the field and the limit (docs/api.md "Limits").
 *
 * Sizes are UTF-8 bytes. Worst case of one labels map on the wire: 16 KiB of
 * keys and values + 64 × 8 bytes of framing ≈ 16.9 KiB, so a SandboxSummary
 * is at most ≈ 17.1 KiB (see list paging in vmm-grpc).
 */
export const REQUEST_LIMITS = {
  labels: {
    /** Labels per map. */
    maxCount: 64,
    /** Key length; keys are [A-Za-z0-9._/-]. */
    maxKeyBytes: 128,
    /** Value length; values are UTF-8 without control characters. */
    maxValueBytes: 1024,
    /** Keys and values of one map together. */
    maxTotalBytes: 16 * 1024,
  },
  cmd: {
    /** Arguments (argv entries). */
    maxArgs: 1024,
    /** All arguments together. */
    maxTotalBytes: 128 * 1024,
  },
  env: {
    /** Variables. */
    maxCount: 1024,
    /** Name length. */
    maxNameBytes: 256,
    /** Names and values together. */
    maxTotalBytes: 128 * 1024,
  },
  /** working_dir (Linux PATH_MAX). */
  workingDirMaxBytes: 4096,
  /** kernel and rootfs names or paths (Linux PATH_MAX). */
  imagePathMaxBytes: 4096,
  /** ssh_public_key (several keys of any type fit). */
  sshPublicKeyMaxBytes: 16 * 1024,
} as const;

const LABEL_KEY = /^[A-Za-z0-9._/-]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;
const USER = /^[A-Za-z0-9._-]{1,32}$/;

const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/**
 * Checks a labels map (of a sandbox, a snapshot, or a List filter) against
 * `REQUEST_LIMITS.labels`. `field` is the proto field named in the error.
 */
export function validateLabels(field: string, labels: Readonly<Record<string, string>>): void {
  const l = REQUEST_LIMITS.labels;
  const keys = Object.keys(labels);
  // The count first: a huge map is refused without looking at its entries.
  if (keys.length > l.maxCount) {
    throw new InvalidArgumentError(field, `at most ${l.maxCount} labels, got ${keys.length}`);
  }
  let total = 0;
  for (const k of keys) {
    const v = labels[k] ?? "";
    const kb = bytes(k);
    if (kb === 0 || kb > l.maxKeyBytes || !LABEL_KEY.test(k)) {
      throw new InvalidArgumentError(
        field,
        `key ${quote(k)} is invalid: keys are 1-${l.maxKeyBytes} bytes of letters, digits, '.', '_', '/' and '-'`,
      );
    }
    const vb = bytes(v);
    if (vb > l.maxValueBytes) {
      throw new InvalidArgumentError(
        `${field}[${k}]`,
        `value must be at most ${l.maxValueBytes} bytes, got ${vb}`,
      );
    }
    if (CONTROL.test(v)) {
      throw new InvalidArgumentError(`${field}[${k}]`, "value must not contain control characters");
    }
    total += kb + vb;
  }
  if (total > l.maxTotalBytes) {
    throw new InvalidArgumentError(
      field,
      `keys and values must total at most ${l.maxTotalBytes} bytes, got ${total}`,
    );
  }
}

/**
 * Checks what Create carries besides the process spec and the resources:
 * labels, kernel and rootfs names, the SSH key.
 */
export function validateCreateRequest(spec: CreateSandboxSpec): void {
  validateLabels("labels", spec.labels);
  const autoPause = spec.autoPauseSeconds;
  if (
    autoPause !== undefined &&
    (!Number.isInteger(autoPause) || autoPause < 0 || autoPause > 0xffff_ffff)
  ) {
    throw new InvalidArgumentError(
      "auto_pause_seconds",
      `must be a whole number of seconds from 0 to 4294967295, got ${autoPause}`,
    );
  }
  for (const [field, value] of [
    ["kernel", spec.kernel],
    ["rootfs", spec.rootfs],
  ] as const) {
    if (value === undefined) continue;
    const n = bytes(value);
    if (n > REQUEST_LIMITS.imagePathMaxBytes) {
      throw new InvalidArgumentError(
        field,
        `must be at most ${REQUEST_LIMITS.imagePathMaxBytes} bytes, got ${n}`,
      );
    }
  }
  if (spec.sshPublicKey !== undefined) {
    const n = bytes(spec.sshPublicKey);
    if (n > REQUEST_LIMITS.sshPublicKeyMaxBytes) {
      throw new InvalidArgumentError(
        "ssh_public_key",
        `must be at most ${REQUEST_LIMITS.sshPublicKeyMaxBytes} bytes, got ${n}`,
      );
    }
    if (spec.sshPublicKey.includes("\0"))
      throw new InvalidArgumentError("ssh_public_key", "must not contain NUL");
    // Refused rather than accepted and dropped: nothing delivers it to the guest yet (no MMDS
    // write, no agent support), and a client must not believe it can ssh in.
    if (spec.sshPublicKey !== "") {
      throw new UnimplementedError(
        "ssh_public_key: SSH access is not supported by this daemon yet; the key would not reach the guest",
        {
          hint: "leave ssh_public_key unset and use Run or Exec (vmm run, vmm exec) to work in the sandbox",
        },
      );
    }
  }
}

/** Validates a process spec (argv, env, cwd, user, terminal size), naming the field. */
export function validateProcessSpec(spec: ProcessSpec): void {
  validateCmd(spec.cmd);
  validateEnv(spec.env);
  if (spec.workingDir !== undefined) {
    const n = bytes(spec.workingDir);
    if (n > REQUEST_LIMITS.workingDirMaxBytes) {
      throw new InvalidArgumentError(
        "working_dir",
        `must be at most ${REQUEST_LIMITS.workingDirMaxBytes} bytes, got ${n}`,
      );
    }
    if (!spec.workingDir.startsWith("/")) {
      throw new InvalidArgumentError(
        "working_dir",
        `must be an absolute path, got ${quote(spec.workingDir)}`,
      );
    }
    if (spec.workingDir.includes("\0"))
      throw new InvalidArgumentError("working_dir", "must not contain NUL");
  }
  if (spec.user !== undefined && !USER.test(spec.user)) {
    throw new InvalidArgumentError(
      "user",
      `must be a user name or numeric uid (1-32 characters of letters, digits, '.', '_', '-'), got ${quote(spec.user)}`,
    );
  }
  if (
    spec.ttySize &&
    (spec.ttySize.cols < 1 ||
      spec.ttySize.rows < 1 ||
      spec.ttySize.cols > 65535 ||
      spec.ttySize.rows > 65535)
  ) {
    throw new InvalidArgumentError("tty_size", "width and height must be 1..65535");
  }
  if (spec.timeoutSeconds > MAX_PROCESS_TIMEOUT_SECONDS) {
    throw new InvalidArgumentError(
      "timeout_seconds",
      `must be at most ${MAX_PROCESS_TIMEOUT_SECONDS} (49 days; the agent protocol carries milliseconds in 32 bits), got ${spec.timeoutSeconds}`,
    );
  }
}

/** Longest Run/Exec timeout: the agent protocol's TIMEOUT_MS is a uint32 of milliseconds. */
export const MAX_PROCESS_TIMEOUT_SECONDS = Math.floor(0xffffffff / 1000);

function validateCmd(cmd: readonly string[]): void {
  const l = REQUEST_LIMITS.cmd;
  if (cmd.length === 0) throw new InvalidArgumentError("cmd", "must not be empty");
  if (cmd.length > l.maxArgs) {
    throw new InvalidArgumentError("cmd", `at most ${l.maxArgs} arguments, got ${cmd.length}`);
  }
  if (cmd[0] === "") throw new InvalidArgumentError("cmd[0]", "must not be empty");
  let total = 0;
  cmd.forEach((a, i) => {
    if (a.includes("\0")) throw new InvalidArgumentError(`cmd[${i}]`, "must not contain NUL");
    total += bytes(a);
  });
  if (total > l.maxTotalBytes) {
    throw new InvalidArgumentError(
      "cmd",
      `arguments must total at most ${l.maxTotalBytes} bytes, got ${total}`,
    );
  }
}

function validateEnv(env: Readonly<Record<string, string>>): void {
  const l = REQUEST_LIMITS.env;
  const names = Object.keys(env);
  if (names.length > l.maxCount) {
    throw new InvalidArgumentError("env", `at most ${l.maxCount} variables, got ${names.length}`);
  }
  let total = 0;
  for (const k of names) {
    const v = env[k] ?? "";
    const kb = bytes(k);
    if (kb === 0 || kb > l.maxNameBytes || k.includes("=") || k.includes("\0")) {
      throw new InvalidArgumentError(
        "env",
        `invalid variable name ${quote(k)}: names are 1-${l.maxNameBytes} bytes without '=' or NUL`,
      );
    }
    if (v.includes("\0")) throw new InvalidArgumentError(`env[${k}]`, "must not contain NUL");
    total += kb + bytes(v);
  }
  if (total > l.maxTotalBytes) {
    throw new InvalidArgumentError(
      "env",
      `names and values must total at most ${l.maxTotalBytes} bytes, got ${total}`,
    );
  }
}

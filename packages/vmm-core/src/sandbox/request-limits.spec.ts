import { describe, expect, it } from "vitest";
import { InvalidArgumentError, UnimplementedError } from "../errors.js";
import {
  MAX_PROCESS_TIMEOUT_SECONDS,
  REQUEST_LIMITS,
  validateCreateRequest,
  validateLabels,
  validateProcessSpec,
} from "./request-limits.js";
import type { CreateSandboxSpec, ProcessSpec } from "./types.js";

const L = REQUEST_LIMITS;

/** `n` labels `k0…` whose keys and values together are exactly `total` bytes (n ≤ 64). */
function labelsOf(n: number, total = n * 4): Record<string, string> {
  const out: Record<string, string> = {};
  let left = total;
  for (let i = 0; i < n; i++) {
    const key = `k${i}`;
    const value = "v".repeat(Math.min(L.labels.maxValueBytes, left - key.length - (n - i - 1) * 4));
    out[key] = value;
    left -= key.length + value.length;
  }
  return out;
}

const proc = (over: Partial<ProcessSpec>): ProcessSpec => ({
  cmd: ["true"],
  env: {},
  tty: false,
  timeoutSeconds: 0,
  ...over,
});

const envOf = (n: number, valueBytes = 0): Record<string, string> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`E${i}`, "x".repeat(valueBytes)]));

type Case = [name: string, ok: () => void, bad: () => void, field: RegExp];

const cases: Case[] = [
  [
    "label count",
    () => validateLabels("labels", labelsOf(L.labels.maxCount)),
    () => validateLabels("labels", labelsOf(L.labels.maxCount + 1)),
    /^labels: at most 64 labels, got 65$/,
  ],
  [
    "label key bytes",
    () => validateLabels("labels", { ["k".repeat(L.labels.maxKeyBytes)]: "v" }),
    () => validateLabels("labels", { ["k".repeat(L.labels.maxKeyBytes + 1)]: "v" }),
    /^labels: key "k+"… \(129 characters\) is invalid: keys are 1-128 bytes/,
  ],
  [
    "label value bytes",
    () => validateLabels("labels", { a: "é".repeat(L.labels.maxValueBytes / 2) }),
    () => validateLabels("labels", { a: `${"é".repeat(L.labels.maxValueBytes / 2)}x` }),
    /^labels\[a\]: value must be at most 1024 bytes, got 1025$/,
  ],
  [
    "label total bytes",
    () => validateLabels("labels", labelsOf(20, L.labels.maxTotalBytes)),
    () => validateLabels("labels", labelsOf(20, L.labels.maxTotalBytes + 1)),
    /^labels: keys and values must total at most 16384 bytes, got 16385$/,
  ],
  [
    "label key characters",
    () => validateLabels("labels", { "example.com/team_a-1": "x" }),
    () => validateLabels("labels", { "team a": "x" }),
    /^labels: key "team a" is invalid/,
  ],
  [
    "label value control characters",
    () => validateLabels("labels", { a: "tab-free ünïcode ✓" }),
    () => validateLabels("labels", { a: "x\u001b[31m" }),
    /^labels\[a\]: value must not contain control characters$/,
  ],
  [
    "cmd argument count",
    () => validateProcessSpec(proc({ cmd: Array(L.cmd.maxArgs).fill("a") })),
    () => validateProcessSpec(proc({ cmd: Array(L.cmd.maxArgs + 1).fill("a") })),
    /^cmd: at most 1024 arguments, got 1025$/,
  ],
  [
    "cmd total bytes",
    () => validateProcessSpec(proc({ cmd: ["echo", "x".repeat(L.cmd.maxTotalBytes - 4)] })),
    () => validateProcessSpec(proc({ cmd: ["echo", "x".repeat(L.cmd.maxTotalBytes - 3)] })),
    /^cmd: arguments must total at most 131072 bytes, got 131073$/,
  ],
  [
    "env count",
    () => validateProcessSpec(proc({ env: envOf(L.env.maxCount) })),
    () => validateProcessSpec(proc({ env: envOf(L.env.maxCount + 1) })),
    /^env: at most 1024 variables, got 1025$/,
  ],
  [
    "env name bytes",
    () => validateProcessSpec(proc({ env: { ["N".repeat(L.env.maxNameBytes)]: "" } })),
    () => validateProcessSpec(proc({ env: { ["N".repeat(L.env.maxNameBytes + 1)]: "" } })),
    /^env: invalid variable name "N+"… \(257 characters\): names are 1-256 bytes/,
  ],
  [
    "env total bytes",
    () => validateProcessSpec(proc({ env: { A: "x".repeat(L.env.maxTotalBytes - 1) } })),
    () => validateProcessSpec(proc({ env: { A: "x".repeat(L.env.maxTotalBytes) } })),
    /^env: names and values must total at most 131072 bytes, got 131073$/,
  ],
  [
    "working_dir bytes",
    () => validateProcessSpec(proc({ workingDir: `/${"d".repeat(L.workingDirMaxBytes - 1)}` })),
    () => validateProcessSpec(proc({ workingDir: `/${"d".repeat(L.workingDirMaxBytes)}` })),
    /^working_dir: must be at most 4096 bytes, got 4097$/,
  ],
  [
    "user characters",
    () => validateProcessSpec(proc({ user: "u".repeat(32) })),
    () => validateProcessSpec(proc({ user: "u".repeat(33) })),
    /^user: must be a user name or numeric uid/,
  ],
  [
    "kernel bytes",
    () => validateCreateRequest(spec({ kernel: "k".repeat(L.imagePathMaxBytes) })),
    () => validateCreateRequest(spec({ kernel: "k".repeat(L.imagePathMaxBytes + 1) })),
    /^kernel: must be at most 4096 bytes, got 4097$/,
  ],
  [
    "rootfs bytes",
    () => validateCreateRequest(spec({ rootfs: "r".repeat(L.imagePathMaxBytes) })),
    () => validateCreateRequest(spec({ rootfs: "r".repeat(L.imagePathMaxBytes + 1) })),
    /^rootfs: must be at most 4096 bytes, got 4097$/,
  ],
  [
    "create labels",
    () => validateCreateRequest(spec({ labels: labelsOf(64, L.labels.maxTotalBytes) })),
    () => validateCreateRequest(spec({ labels: labelsOf(65) })),
    /^labels: at most 64 labels/,
  ],
  [
    "Run/Exec timeout_seconds (the agent's 32-bit milliseconds)",
    () => validateProcessSpec(proc({ timeoutSeconds: MAX_PROCESS_TIMEOUT_SECONDS })),
    () => validateProcessSpec(proc({ timeoutSeconds: MAX_PROCESS_TIMEOUT_SECONDS + 1 })),
    /^timeout_seconds: must be at most 4294967 /,
  ],
];

function spec(over: Partial<CreateSandboxSpec>): CreateSandboxSpec {
  return { labels: {}, ttlSeconds: 0, ...over };
}

describe("request limits", () => {
  it.for(cases)("%s: at the limit passes, one past it is refused", ([, ok, bad, message]) => {
    expect(ok).not.toThrow();
    let err: unknown;
    try {
      bad();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message.length).toBeLessThan(300);
  });

  it("refuses 120,000 labels by their count, in well under 100 ms", () => {
    const labels = Object.fromEntries(Array.from({ length: 120_000 }, (_, i) => [`k${i}`, "v"]));
    expect(() => validateLabels("labels", labels)).toThrow(/at most 64 labels, got 120000/);
    // Best of five: one run on a shared, loaded host can stall on a GC or a lost time slice.
    const runs = Array.from({ length: 5 }, () => {
      const t = performance.now();
      expect(() => validateLabels("labels", labels)).toThrow(/at most 64 labels/);
      return performance.now() - t;
    });
    expect(Math.min(...runs)).toBeLessThan(100);
  });

  it("auto_pause_seconds: a whole number of seconds from 0 to 2^32-1, else INVALID_ARGUMENT naming it", () => {
    for (const ok of [0, 1, 0xffff_ffff]) {
      expect(() => validateCreateRequest(spec({ autoPauseSeconds: ok }))).not.toThrow();
    }
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) {
      const call = () => validateCreateRequest(spec({ autoPauseSeconds: bad }));
      expect(call).toThrow(InvalidArgumentError);
      expect(call).toThrow(
        /^auto_pause_seconds: must be a whole number of seconds from 0 to 4294967295/,
      );
    }
  });

  it("ssh_public_key: bounded (16 KiB, no NUL) first, then any non-empty key UNIMPLEMENTED, never dropped", () => {
    const over = () =>
      validateCreateRequest(spec({ sshPublicKey: "k".repeat(L.sshPublicKeyMaxBytes + 1) }));
    expect(over).toThrow(InvalidArgumentError);
    expect(over).toThrow(/^ssh_public_key: must be at most 16384 bytes, got 16385$/);
    expect(() => validateCreateRequest(spec({ sshPublicKey: "ssh-ed25519 A\0" }))).toThrow(
      /^ssh_public_key: must not contain NUL$/,
    );
    for (const key of [
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA user@host",
      "k".repeat(L.sshPublicKeyMaxBytes),
    ]) {
      let err: unknown;
      try {
        validateCreateRequest(spec({ sshPublicKey: key }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnimplementedError);
      expect((err as UnimplementedError).kind).toBe("unimplemented");
      expect((err as Error).message).toMatch(/^ssh_public_key: SSH access is not supported/);
      expect((err as UnimplementedError).hint).toMatch(/Run or Exec/);
    }
    // Unset or empty: nothing to deliver.
    expect(() => validateCreateRequest(spec({}))).not.toThrow();
    expect(() => validateCreateRequest(spec({ sshPublicKey: "" }))).not.toThrow();
  });

  it("labelsOf builds what it says", () => {
    const l = labelsOf(64, L.labels.maxTotalBytes);
    expect(Object.keys(l)).toHaveLength(64);
    expect(Object.entries(l).reduce((n, [k, v]) => n + k.length + v.length, 0)).toBe(16384);
  });
});

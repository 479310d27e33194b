import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "../errors.js";

/**
 * The kinds of identifiers vmm-core validates. Each one ends up as a file or
 * directory name under `data_dir`, so the rules exclude `.`/`..`, slashes,
 * NUL and leading dots (dot-names are reserved for temp and deleting entries).
 *
 * - `sandbox_id`, `snapshot_id`: 1–63 chars, `[a-z0-9][a-z0-9-]*` (DNS-label-like).
 * - `snapshot_name`: 1–63 chars, `[A-Za-z0-9][A-Za-z0-9._-]*`.
 */
export type IdKind = "sandbox_id" | "snapshot_id" | "snapshot_name";

/** Longest accepted identifier of any kind, in characters (= bytes: ASCII only). */
export const ID_MAX_LENGTH = 63;

const patterns: Record<IdKind, { re: RegExp; rule: string }> = {
  sandbox_id: {
    re: /^[a-z0-9][a-z0-9-]*$/,
    rule: "lowercase letters, digits and '-', starting with a letter or digit",
  },
  snapshot_id: {
    re: /^[a-z0-9][a-z0-9-]*$/,
    rule: "lowercase letters, digits and '-', starting with a letter or digit",
  },
  snapshot_name: {
    re: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    rule: "letters, digits, '.', '_' and '-', starting with a letter or digit",
  },
};

/**
 * Checks that `value` is a valid identifier of `kind` and returns it.
 * Throws InvalidArgumentError naming `field` (default: the kind) otherwise.
 */
export function validateId(kind: IdKind, value: unknown, field: string = kind): string {
  const { re, rule } = patterns[kind];
  if (typeof value !== "string") {
    throw new InvalidArgumentError(field, `must be a string, got ${typeof value}`);
  }
  if (value.length === 0) {
    throw new InvalidArgumentError(field, "must not be empty");
  }
  if (value.length > ID_MAX_LENGTH) {
    throw new InvalidArgumentError(
      field,
      `must be at most ${ID_MAX_LENGTH} characters, got ${value.length}`,
    );
  }
  if (!re.test(value)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(value)} is invalid: use ${rule}`);
  }
  return value;
}

/** Reports whether `value` is a valid identifier of `kind`, without throwing. */
export function isValidId(kind: IdKind, value: unknown): value is string {
  return (
    typeof value === "string" && value.length <= ID_MAX_LENGTH && patterns[kind].re.test(value)
  );
}

/**
 * Returns a new identifier `<prefix>-<16 lowercase base32 chars>` (80 random
 * bits), valid as `sandbox_id`, `snapshot_id` and `snapshot_name`.
 * `prefix` must itself be a short valid sandbox id (at most 20 chars).
 */
export function generateId(prefix: string): string {
  validateId("sandbox_id", prefix, "prefix");
  if (prefix.length > 20) throw new InvalidArgumentError("prefix", "must be at most 20 characters");
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const bytes = randomBytes(10);
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `${prefix}-${out}`;
}

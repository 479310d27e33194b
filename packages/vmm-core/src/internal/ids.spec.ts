import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { generateId, type IdKind, isValidId, validateId } from "./ids.js";

const long64 = "a".repeat(64);
const long63 = "a".repeat(63);

const good: [IdKind, string][] = [
  ["sandbox_id", "a"],
  ["sandbox_id", "0"],
  ["sandbox_id", "sb-1234"],
  ["sandbox_id", long63],
  ["snapshot_id", "snap-abc"],
  ["snapshot_name", "My.Snap_1-x"],
  ["snapshot_name", "Z"],
  ["snapshot_name", "a.."],
  ["snapshot_name", long63],
];

const bad: [IdKind, unknown][] = [
  ["sandbox_id", ""],
  ["sandbox_id", "."],
  ["sandbox_id", ".."],
  ["sandbox_id", "-a"],
  ["sandbox_id", "A"],
  ["sandbox_id", "a_b"],
  ["sandbox_id", "a.b"],
  ["sandbox_id", "a/b"],
  ["sandbox_id", "/a"],
  ["sandbox_id", "a\0"],
  ["sandbox_id", "a b"],
  ["sandbox_id", "a\n"],
  ["sandbox_id", "é"],
  ["sandbox_id", long64],
  ["sandbox_id", 12],
  ["sandbox_id", undefined],
  ["snapshot_id", "Snap"],
  ["snapshot_id", "../x"],
  ["snapshot_name", ""],
  ["snapshot_name", "."],
  ["snapshot_name", ".."],
  ["snapshot_name", ".hidden"],
  ["snapshot_name", "_a"],
  ["snapshot_name", "-a"],
  ["snapshot_name", "a/b"],
  ["snapshot_name", "../etc"],
  ["snapshot_name", "a\\b"],
  ["snapshot_name", "a\0b"],
  ["snapshot_name", "a:b"],
  ["snapshot_name", long64],
  ["snapshot_name", null],
];

describe("validateId", () => {
  it.each(good)("accepts %s %j", (kind, value) => {
    expect(validateId(kind, value)).toBe(value);
    expect(isValidId(kind, value)).toBe(true);
  });

  it.each(bad)("rejects %s %j", (kind, value) => {
    let caught: unknown;
    try {
      validateId(kind, value, "req.field");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).field).toBe("req.field");
    expect((caught as Error).message).toMatch(/^req\.field: /);
    expect(isValidId(kind, value)).toBe(false);
  });

  it("defaults the field name to the kind", () => {
    expect(() => validateId("snapshot_name", "")).toThrow(/^snapshot_name: must not be empty/);
  });
});

describe("generateId", () => {
  it("returns distinct ids valid for every kind", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = generateId("sb");
      expect(id).toMatch(/^sb-[a-z2-7]{16}$/);
      for (const kind of ["sandbox_id", "snapshot_id", "snapshot_name"] as const) {
        expect(isValidId(kind, id)).toBe(true);
      }
      ids.add(id);
    }
    expect(ids.size).toBe(1000);
  });

  it.each(["", "A", "a/b", "x".repeat(21)])("rejects prefix %j", (prefix) => {
    expect(() => generateId(prefix)).toThrow(InvalidArgumentError);
  });
});

import { describe, expect, it } from "vitest";
import { isValidId } from "../internal/index.js";
import { defaultSnapshotName } from "./snapshot-name.js";

describe("defaultSnapshotName", () => {
  const now = 1_767_225_600_123;

  it.for(["a", "sb-abc", "x".repeat(49), "y".repeat(50), `z${"-".repeat(61)}9`, "q".repeat(63)])(
    "is a valid snapshot name for sandbox id %s",
    (id) => {
      const name = defaultSnapshotName(id, now);
      expect(isValidId("snapshot_name", name)).toBe(true);
      expect(name.endsWith(`-${now}`)).toBe(true);
      expect(name.startsWith(id.slice(0, 49))).toBe(true);
    },
  );

  it("keeps a short id whole", () => {
    expect(defaultSnapshotName("sb-1", now)).toBe(`sb-1-${now}`);
  });

  it("differs for checkpoints at different times", () => {
    const id = "w".repeat(63);
    expect(defaultSnapshotName(id, now)).not.toBe(defaultSnapshotName(id, now + 1));
  });
});

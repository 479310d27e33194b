import { describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../errors.js";
import { Admission, type CommittedUsage } from "./admission.js";
import type { SandboxLimits } from "./limits.js";

const limits = (over: Partial<SandboxLimits> = {}): SandboxLimits => ({
  maxSandboxes: 100,
  maxVcpusPerSandbox: 8,
  maxMemoryMibPerSandbox: 8192,
  maxTotalVcpus: 0,
  maxTotalMemoryMib: 0,
  maxConcurrentCreates: 100,
  maxTotalDiskBytes: 0,
  maxSnapshotsPerSandbox: 0,
  ...over,
});
const none: CommittedUsage = { sandboxes: 0, vcpus: 0, memoryMib: 0, diskBytes: 0 };
const small = { vcpus: 1, memoryMib: 256, diskBytes: 1 << 20 };

describe("Admission", () => {
  it("counts reservations made in the same turn: 20 at once against max_sandboxes = 3 → 3", () => {
    const a = new Admission(limits({ maxSandboxes: 3 }), () => none);
    const results = Array.from({ length: 20 }, () => {
      try {
        return a.reserveSandbox(small);
      } catch (err) {
        return err;
      }
    });
    expect(results.filter((r) => !(r instanceof Error))).toHaveLength(3);
    expect(results.filter((r) => r instanceof ResourceExhaustedError)).toHaveLength(17);
  });

  it.each([
    ["memory", { maxTotalMemoryMib: 512 }, /memory: 512 of 512 MiB in use, 256 MiB more/],
    ["vcpus", { maxTotalVcpus: 2 }, /vcpus: 2 of 2 in use/],
    ["disk", { maxTotalDiskBytes: 2 << 20 }, /disk: .* \(limits\.max_total_disk_gib\)/],
    ["concurrent creates", { maxConcurrentCreates: 2 }, /limits\.max_concurrent_creates/],
  ] as const)("refuses the third of three when %s allows two", (_n, over, message) => {
    const a = new Admission(limits(over), () => none);
    a.reserveSandbox(small);
    a.reserveSandbox(small);
    expect(() => a.reserveSandbox(small)).toThrow(message);
  });

  it("gives capacity back when a reservation is disposed (a failed create)", () => {
    const a = new Admission(limits({ maxSandboxes: 1, maxConcurrentCreates: 1 }), () => none);
    {
      using _failed = a.reserveSandbox(small);
    }
    expect(a.creating).toBe(0);
    expect(() => a.reserveSandbox(small)).not.toThrow();
  });

  it("hands a registered sandbox over to the committed usage, and stops counting it as creating once settled", () => {
    let committed = none;
    const a = new Admission(limits({ maxSandboxes: 2, maxConcurrentCreates: 1 }), () => committed);
    const r = a.reserveSandbox(small);
    committed = { sandboxes: 1, vcpus: 1, memoryMib: 256, diskBytes: 1 << 20 };
    r.registered();
    expect(() => a.reserveSandbox(small)).toThrow(/max_concurrent_creates/); // still booting
    r.settled();
    const second = a.reserveSandbox(small);
    second[Symbol.dispose]();
    r[Symbol.dispose](); // after registered+settled: nothing more to give back
    expect(a.creating).toBe(0);
    committed = { ...committed, sandboxes: 2 };
    expect(() => a.reserveSandbox(small)).toThrow(/all 2 allowed sandboxes exist/);
  });

  it("reserves disk for a checkpoint, and releases it on dispose", () => {
    const a = new Admission(limits({ maxTotalDiskBytes: 10 }), () => ({ ...none, diskBytes: 4 }));
    const r = a.reserveDisk(6);
    expect(() => a.reserveDisk(1)).toThrow(ResourceExhaustedError);
    r[Symbol.dispose]();
    expect(() => a.reserveDisk(6)).not.toThrow();
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FirecrackerLauncher, FirecrackerProcess } from "@vmm/firecracker";
import { afterAll, describe, expect, it } from "vitest";
import { SandboxDir } from "../storage/index.js";
import { bootMicroVm, type VmmRuntime } from "./microvm.js";

/** A launcher whose process records API calls (and what had happened when each was made). */
function recordingRuntime(log: string[]): VmmRuntime {
  const client = new Proxy(
    {},
    {
      get: (_t, name) => async () => {
        log.push(String(name));
      },
    },
  );
  const launcher: FirecrackerLauncher = {
    async launch() {
      return {
        client,
        async [Symbol.asyncDispose]() {
          log.push("disposed");
        },
      } as unknown as FirecrackerProcess;
    },
    async adopt() {
      throw new Error("not used");
    },
  };
  return {
    launcher,
    apiTimeoutMs: 1000,
    launchDefaults: { binaryPath: "/bin/firecracker" } as VmmRuntime["launchDefaults"],
  };
}

const dataDir = await mkdtemp(join(tmpdir(), "vmm-microvm-"));
afterAll(() => rm(dataDir, { recursive: true, force: true }));
let n = 0;

const spec = async (rootfsReady: Promise<unknown>) => ({
  dir: await SandboxDir.create(dataDir, `sb-${++n}`),
  kernelPath: "/k",
  bootArgs: "console=ttyS0",
  vcpus: 1,
  memoryMib: 128,
  net: undefined,
  vsockCid: 3,
  rootfsReady,
});

describe("bootMicroVm", () => {
  it("attaches the rootfs only once its clone has finished", async () => {
    const log: string[] = [];
    let finish!: () => void;
    const rootfsReady = new Promise<void>((r) => {
      finish = () => {
        log.push("rootfs cloned");
        r();
      };
    });
    setTimeout(finish, 20);
    await bootMicroVm(recordingRuntime(log), await spec(rootfsReady), AbortSignal.timeout(5000));
    expect(log.indexOf("rootfs cloned")).toBeGreaterThanOrEqual(0);
    expect(log.indexOf("rootfs cloned")).toBeLessThan(log.indexOf("putGuestDriveByID"));
    expect(log.at(-1)).toBe("createSyncAction");
  });

  it("stops Firecracker when the clone fails, before attaching anything", async () => {
    const log: string[] = [];
    const failed = Promise.reject(new Error("disk full"));
    failed.catch(() => {}); // handled by bootMicroVm; created before it is called
    await expect(
      bootMicroVm(recordingRuntime(log), await spec(failed), AbortSignal.timeout(5000)),
    ).rejects.toThrow("disk full");
    expect(log).not.toContain("putGuestDriveByID");
    expect(log.at(-1)).toBe("disposed");
  });
});

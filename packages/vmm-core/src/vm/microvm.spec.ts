import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FirecrackerApiError,
  type FirecrackerClient,
  FirecrackerConnectionError,
  type FirecrackerLauncher,
  type FirecrackerProcess,
} from "@vmm/firecracker";
import { afterAll, describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../errors.js";
import { controlCodePoints } from "../internal/guest-text.js";
import { SandboxDir } from "../storage/index.js";
import { MicroVm, type VmmRuntime } from "./microvm.js";

/** A fake Firecracker client: records each call; throws `faults[operationId]` if set. */
function recordingClient(log: string[], faults: Record<string, Error> = {}): FirecrackerClient {
  return new Proxy(
    {},
    {
      get: (_t, name) => async () => {
        log.push(String(name));
        const fault = faults[String(name)];
        if (fault) throw fault;
      },
    },
  ) as FirecrackerClient;
}

/** Firecracker's answer to a call it refuses: 400 with a `fault_message`. */
const refusal = (operation: string, faultMessage: string) =>
  new FirecrackerApiError({ operation, method: "PUT", path: "/x", status: 400, faultMessage });

/** A launcher whose process records API calls (and what had happened when each was made). */
function recordingRuntime(log: string[], faults: Record<string, Error> = {}): VmmRuntime {
  const client = recordingClient(log, faults);
  const launcher: FirecrackerLauncher = {
    async launch() {
      return {
        client,
        exited: new Promise(() => {}),
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

describe("MicroVm.boot", () => {
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
    await MicroVm.boot(recordingRuntime(log), await spec(rootfsReady), AbortSignal.timeout(5000));
    expect(log.indexOf("rootfs cloned")).toBeGreaterThanOrEqual(0);
    expect(log.indexOf("rootfs cloned")).toBeLessThan(log.indexOf("putGuestDriveByID"));
    expect(log.at(-1)).toBe("createSyncAction");
  });

  it("stops Firecracker when the clone fails, before attaching anything", async () => {
    const log: string[] = [];
    const failed = Promise.reject(new Error("disk full"));
    failed.catch(() => {}); // handled by MicroVm.boot; created before it is called
    await expect(
      MicroVm.boot(recordingRuntime(log), await spec(failed), AbortSignal.timeout(5000)),
    ).rejects.toThrow("disk full");
    expect(log).not.toContain("putGuestDriveByID");
    expect(log.at(-1)).toBe("disposed");
  });
});

describe("Firecracker refusals become FailedPreconditionError with the fault message", () => {
  /** A booted MicroVm whose later calls meet `faults` (the boot itself succeeds). */
  const vmWith = async (log: string[], faults: Record<string, Error>) => {
    const live: Record<string, Error> = {};
    const vm = await MicroVm.boot(
      recordingRuntime(log, live),
      await spec(Promise.resolve()),
      AbortSignal.timeout(5000),
    );
    log.length = 0;
    Object.assign(live, faults);
    return vm;
  };
  /** A restore whose `snapshot/load` meets `fault`. */
  const restoreWith = async (log: string[], fault: Error) =>
    MicroVm.restore(
      recordingRuntime(log, { loadSnapshot: fault }),
      {
        dir: (await spec(Promise.resolve())).dir,
        net: undefined,
        filesReady: Promise.resolve(),
        load: params,
        loadTimeoutMs: 1000,
      },
      AbortSignal.timeout(5000),
    );
  const params = {
    snapshot_path: "vmstate",
    mem_backend: { backend_type: "File" as const, backend_path: "mem" },
  };
  const call = { timeoutMs: 1000 };
  const target = { vmstate: "vmstate", mem: "mem" };

  it("createSnapshot refused: FailedPrecondition naming the call, fault kept, VM resumed", async () => {
    const log: string[] = [];
    const fault = refusal(
      "createSnapshot",
      "Create snapshot error: Cannot save the microVM state: Operation not allowed",
    );
    const resumeErrors: unknown[] = [];
    const vm = await vmWith(log, { createSnapshot: fault });
    const err = await vm
      .snapshot(
        target,
        call,
        async () => {
          log.push("copied while paused");
        },
        (e: unknown) => resumeErrors.push(e),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).kind).toBe("failed_precondition");
    expect((err as Error).message).toBe(
      "firecracker refused createSnapshot: Create snapshot error: Cannot save the microVM state: Operation not allowed",
    );
    expect((err as Error).cause).toBe(fault);
    expect(log).toEqual(["patchVm", "createSnapshot", "patchVm"]);
    expect(resumeErrors).toEqual([]);
  });

  it("pause refused: nothing snapshotted, FailedPrecondition", async () => {
    const log: string[] = [];
    const vm = await vmWith(log, {
      patchVm: refusal("patchVm", "The requested operation is not supported"),
    });
    await expect(
      vm.snapshot(
        target,
        call,
        async () => {
          log.push("copied while paused");
        },
        () => {},
      ),
    ).rejects.toThrow(/^firecracker refused patchVm: The requested operation is not supported$/);
    expect(log).not.toContain("createSnapshot");
  });

  it("loadSnapshot refused: the fault text is bounded and stripped of control characters", async () => {
    const hostile = `Load snapshot error: \x1b[31mred\x1b[0m line\nforged ${"x".repeat(100_000)}`;
    const log: string[] = [];
    const err = await restoreWith(log, refusal("loadSnapshot", hostile)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    const message = (err as Error).message;
    expect(message).toMatch(
      /^firecracker refused loadSnapshot: Load snapshot error: red line forged x+/,
    );
    expect(message).toMatch(/truncated/);
    expect(Buffer.byteLength(message)).toBeLessThan(700);
    expect(controlCodePoints(message)).toEqual([]);
    expect(log.at(-1)).toBe("disposed");
  });

  it("the API socket gone: FailedPrecondition naming the sandbox, no socket path", async () => {
    const gone = new FirecrackerConnectionError(
      "createSyncAction",
      "/var/lib/vmm/sandboxes/sb-1/api.sock",
      "connect ECONNREFUSED",
    );
    const vm = await vmWith([], { createSyncAction: gone });
    const err = await vm.requestShutdown(call).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/sandbox sb-\d+ did not answer createSyncAction/);
    expect((err as Error).message).not.toContain("/var/lib/vmm");
    expect((err as Error).cause).toBe(gone);
  });

  it("a 503 (too many connections) is UNAVAILABLE; other errors pass unchanged", async () => {
    const busy = new FirecrackerApiError({
      operation: "loadSnapshot",
      method: "PUT",
      path: "/snapshot/load",
      status: 503,
      faultMessage: "too many connections",
    });
    await expect(restoreWith([], busy)).rejects.toMatchObject({ kind: "unavailable", cause: busy });
    const bug = new TypeError("x is undefined");
    await expect(restoreWith([], bug)).rejects.toBe(bug);
  });

  it("MicroVm.boot: a refused boot call is FailedPrecondition and the process is disposed", async () => {
    const log: string[] = [];
    const runtime = recordingRuntime(log, {
      putGuestBootSource: refusal("putGuestBootSource", "Invalid kernel path"),
    });
    await expect(
      MicroVm.boot(runtime, await spec(Promise.resolve()), AbortSignal.timeout(5000)),
    ).rejects.toThrow(/^firecracker refused putGuestBootSource: Invalid kernel path$/);
    expect(log.at(-1)).toBe("disposed");
  });
});

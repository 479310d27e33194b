import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  ExitStatus,
  FirecrackerLauncher,
  FirecrackerProcess,
  LaunchOptions,
} from "@vmm/firecracker";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailedPreconditionError, ResourceExhaustedError } from "../errors.js";
import { silentLogger } from "../internal/index.js";
import type { NetworkManager, NetworkSlot } from "../network/index.js";
import { createNoNetworkManager } from "../network/network-manager-none.js";
import { createDiskCloner } from "../storage/index.js";
import { SandboxManager } from "./sandbox-manager.js";
import type { SandboxEvent } from "./types.js";

// The manager in-process, over a fake Firecracker runtime (no process, no
// socket): every API call succeeds unless `failOn` names it, and a process
// "exits" when killed. Readiness "vmm": ready once InstanceStart returned.

interface FakeVm {
  readonly id: string;
  readonly calls: string[];
  alive: boolean;
  exit(status?: Partial<ExitStatus>): void;
}

function fakeLauncher(failOn: Set<string>, vms: FakeVm[]): FirecrackerLauncher {
  let pid = 100_000;
  const launch = async (options: LaunchOptions): Promise<FirecrackerProcess> => {
    let exit!: (s: ExitStatus) => void;
    const exited = new Promise<ExitStatus>((r) => {
      exit = r;
    });
    const vm: FakeVm = {
      id: options.id,
      calls: [],
      alive: true,
      exit: (s) => {
        if (!vm.alive) return;
        vm.alive = false;
        exit({ code: null, signal: "SIGKILL", ...s } as ExitStatus);
      },
    };
    vms.push(vm);
    const client = new Proxy(
      {},
      {
        get: (_t, name) => async () => {
          vm.calls.push(String(name));
          if (failOn.has(String(name))) throw new Error(`fake firecracker refuses ${String(name)}`);
          return {};
        },
      },
    );
    return {
      pid: ++pid,
      startTime: "1",
      id: options.id,
      client,
      apiSocketPath: join(options.workDir, "api.sock"),
      workDir: options.workDir,
      rootDir: options.workDir,
      exited,
      stop: async () => {
        vm.exit();
        return exited;
      },
      kill: () => vm.exit(),
      cleanup: async () => {},
      detach: () => {},
      [Symbol.asyncDispose]: async () => vm.exit(),
    } as unknown as FirecrackerProcess;
  };
  return {
    launch,
    adopt: async () => {
      throw new Error("no adoption in these specs");
    },
  };
}

describe("SandboxManager in-process (fake runtime)", () => {
  let dataDir: string;
  let vms: FakeVm[];
  let failOn: Set<string>;
  let manager: SandboxManager;

  const make = (
    limits: Partial<ConstructorParameters<typeof SandboxManager>[0]["limits"]> = {},
    network: NetworkManager = createNoNetworkManager(),
    readiness: "agent" | "vmm" = "vmm",
  ) => {
    manager = new SandboxManager({
      dataDir,
      imagesDir: join(dataDir, "images"),
      runtime: {
        launcher: fakeLauncher(failOn, vms),
        apiTimeoutMs: 1000,
        launchDefaults: { binaryPath: "/bin/firecracker" } as never,
      },
      network,
      cloner: createDiskCloner("copy"),
      defaults: {
        vcpus: 1,
        memoryMib: 128,
        kernel: "vmlinux",
        rootfs: "rootfs.ext4",
        bootArgs: "console=ttyS0",
        network: "none",
      },
      limits: {
        maxSandboxes: 10,
        maxVcpusPerSandbox: 4,
        maxMemoryMibPerSandbox: 1024,
        maxTotalVcpus: 0,
        maxTotalMemoryMib: 0,
        maxConcurrentCreates: 10,
        maxTotalDiskBytes: 0,
        maxSnapshotsPerSandbox: 0,
        ...limits,
      },
      agent: { port: 1024, readiness, bootTimeoutMs: 5000, callTimeoutMs: 1000 },
      logger: silentLogger,
    });
    return manager;
  };
  const settle = async (id: string, state: string) => {
    for (let i = 0; i < 200; i++) {
      if (manager.inspect(id).state === state) return manager.inspect(id);
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${id} is ${manager.inspect(id).state}, not ${state}`);
  };
  const sandboxDirs = async () =>
    (await readdir(join(dataDir, "sandboxes"))).filter((n) => !n.startsWith("."));

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "vmm-manager-"));
    await rm(join(dataDir, "images"), { recursive: true, force: true });

    await mkdir(join(dataDir, "images"));
    await writeFile(join(dataDir, "images", "vmlinux"), "kernel");
    await writeFile(join(dataDir, "images", "rootfs.ext4"), "rootfs");
    vms = [];
    failOn = new Set();
  });
  afterEach(async () => {
    await manager?.close({ stopSandboxes: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it("create → ready → stop → remove, with events in order and nothing left", async () => {
    make();
    await manager.recover();
    const ac = new AbortController();
    const events: SandboxEvent[] = [];
    const pump = (async () => {
      for await (const e of manager.events({ id: "a" }, ac.signal)) events.push(e);
    })().catch(() => {});
    await new Promise((r) => setTimeout(r, 10));
    await expect(manager.create({ id: "a", labels: {}, ttlSeconds: 0 })).resolves.toMatchObject({
      state: "starting",
    });
    await settle("a", "ready");
    expect(vms[0]?.calls).toContain("createSyncAction");
    await manager.stop("a", 0);
    expect(manager.inspect("a").state).toBe("stopped");
    await manager.remove("a", { force: false });
    ac.abort();
    await pump;
    expect(events.map((e) => e.action)).toEqual([
      "created",
      "ready",
      "stopping",
      "stopped",
      "removed",
    ]);
    expect(await sandboxDirs().catch(() => [])).toEqual([]); // no directory was even made
    expect(vms.every((v) => !v.alive)).toBe(true);
  });

  it("writes each lifecycle state to the record before its event goes out", async () => {
    make();
    await manager.recover();
    const ac = new AbortController();
    const seen: string[] = [];
    const pump = (async () => {
      for await (const e of manager.events({ id: "r" }, ac.signal)) {
        if (e.action === "created") continue;
        // Read at once, in the same turn the subscriber learns of it.
        const record = JSON.parse(
          readFileSync(join(dataDir, "sandboxes", "r", "sandbox.json"), "utf8"),
        ) as { state: string };
        seen.push(`${e.action}:${record.state}`);
      }
    })().catch(() => {});
    await new Promise((r) => setTimeout(r, 10));
    await manager.create({ id: "r", labels: {}, ttlSeconds: 0 });
    await settle("r", "ready");
    await manager.stop("r", 0);
    ac.abort();
    await pump;
    // A daemon killed right after announcing `ready` must find `ready` (or later) on disk: the
    // record is never behind an event a client saw (restart rules).
    const order = ["starting", "ready", "stopping", "stopped"];
    expect(seen.map((x) => x.split(":")[0])).toEqual(["ready", "stopping", "stopped"]);
    for (const x of seen) {
      const [event, record] = x.split(":") as [string, string];
      expect(order.indexOf(record), x).toBeGreaterThanOrEqual(order.indexOf(event));
    }
  });

  it("a boot step that fails leaves the sandbox failed with the reason, its VM gone", async () => {
    make();
    await manager.recover();
    failOn.add("putGuestBootSource");
    await manager.create({ id: "b", labels: {}, ttlSeconds: 0 });
    const info = await settle("b", "failed");
    expect(info.error).toMatch(/^boot failed: .*putGuestBootSource/);
    expect(vms[0]?.alive).toBe(false);
    await manager.remove("b", { force: false });
    expect(await sandboxDirs().catch(() => [])).toEqual([]); // no directory was even made
  });

  it("Firecracker dying underneath turns a ready sandbox failed", async () => {
    make();
    await manager.recover();
    await manager.create({ id: "c", labels: {}, ttlSeconds: 0 });
    await settle("c", "ready");
    vms[0]?.exit({ code: null, signal: "SIGKILL" });
    const info = await settle("c", "failed");
    expect(info.error).toMatch(/killed by SIGKILL/);
  });

  it("a view is the same frozen object until the sandbox changes, then a new one", async () => {
    make();
    await manager.recover();
    await manager.create({ id: "v", labels: { team: "x" }, ttlSeconds: 0 });
    const starting = manager.inspect("v");
    const ready = await settle("v", "ready");
    expect(ready).not.toBe(starting);
    expect(ready.readyAt).toBeInstanceOf(Date);
    expect(starting.readyAt).toBeUndefined();
    // Nothing changed: Inspect and List hand out the very same object, frozen.
    expect(manager.inspect("v")).toBe(ready);
    expect(manager.list({ labels: {} })[0]).toBe(ready);
    expect(manager.list({ labels: { team: "x" } })[0]).toBe(ready);
    expect(Object.isFrozen(ready)).toBe(true);
    vms[0]?.exit({ code: null, signal: "SIGKILL" });
    const failed = await settle("v", "failed");
    expect(failed).not.toBe(ready);
    expect(failed.error).toMatch(/killed by SIGKILL/);
    expect(ready).toMatchObject({ state: "ready", error: undefined });
    expect(manager.inspect("v")).toBe(failed);
    expect(failed.labels).toEqual({ team: "x" });
  });

  it("admission: concurrent Creates past max_sandboxes are refused and hold nothing", async () => {
    make({ maxSandboxes: 2 });
    await manager.recover();
    const results = await Promise.allSettled(
      ["d1", "d2", "d3", "d4"].map((id) => manager.create({ id, labels: {}, ttlSeconds: 0 })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(2);
    const refused = results.filter((r) => r.status === "rejected");
    expect(refused.map((r) => (r as PromiseRejectedResult).reason)).toEqual([
      expect.any(ResourceExhaustedError),
      expect.any(ResourceExhaustedError),
    ]);
    expect((await sandboxDirs()).sort()).toHaveLength(2);
  });

  it("Run without an agent (readiness vmm) is FAILED_PRECONDITION", async () => {
    make();
    await manager.recover();
    await manager.create({ id: "e", labels: {}, ttlSeconds: 0 });
    await settle("e", "ready");
    await expect(
      manager.run(
        "e",
        { cmd: ["true"], env: {}, tty: false, timeoutSeconds: 0 },
        AbortSignal.timeout(1000),
      ),
    ).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it("a kernel whose embedded config lacks the guest's drivers fails Create fast, naming them", async () => {
    make({}, createNoNetworkManager(), "agent");
    await manager.recover();
    const config =
      "CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=y\nCONFIG_VSOCKETS=m\n";
    const { gzipSync } = await import("node:zlib");
    await writeFile(
      join(dataDir, "images", "modular-vmlinux"),
      Buffer.concat([
        Buffer.alloc(4096),
        Buffer.from("IKCFG_ST"),
        gzipSync(config),
        Buffer.from("IKCFG_ED"),
      ]),
    );
    const err = await manager
      .create({ id: "k", labels: {}, ttlSeconds: 0, kernel: "modular-vmlinux" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(String((err as Error).message)).toMatch(/CONFIG_VIRTIO_BLK \(is m: no root disk\)/);
    expect(String((err as Error).message)).toMatch(/CONFIG_VIRTIO_VSOCKETS \(not set/);
    expect((err as FailedPreconditionError).hint).toMatch(/guest\/kernel\/build\.sh/);
    expect(await sandboxDirs().catch(() => [])).toEqual([]); // no directory was even made
    expect(vms).toHaveLength(0);
    // A kernel without an embedded config cannot be judged before booting: Create goes ahead.
    await expect(manager.create({ id: "plain", labels: {}, ttlSeconds: 0 })).resolves.toMatchObject(
      {
        state: "starting",
      },
    );
  });

  it("a rootfs without the agent as /sbin/init fails Create fast, naming /sbin/init", async () => {
    make({}, createNoNetworkManager(), "agent");
    await manager.recover();
    const { execFileSync } = await import("node:child_process");
    const tree = join(dataDir, "no-init.d");
    await mkdir(join(tree, "sbin"), { recursive: true });
    execFileSync("mkfs.ext4", [
      "-q",
      "-F",
      "-d",
      tree,
      join(dataDir, "images", "no-init.ext4"),
      "4M",
    ]);
    const err = await manager
      .create({ id: "r", labels: {}, ttlSeconds: 0, rootfs: "no-init.ext4" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(String((err as Error).message)).toMatch(
      /no-init\.ext4 cannot boot a sandbox: no \/sbin\/init/,
    );
    expect((err as FailedPreconditionError).hint).toMatch(/build-rootfs\.sh/);
    expect(await sandboxDirs().catch(() => [])).toEqual([]);
    expect(vms).toHaveLength(0);
    // init= in the boot args names the program to look for instead.
    const other = await manager
      .create({
        id: "r2",
        labels: {},
        ttlSeconds: 0,
        rootfs: "no-init.ext4",
        bootArgs: "console=ttyS0 init=/bin/agent",
      })
      .catch((e: unknown) => e);
    expect(String((other as Error).message)).toMatch(/no \/bin\/agent/);
  });

  describe("the factory's undo stack: a failed Create gives back exactly what it took", () => {
    /** A tap network manager that counts the slots out; `failAcquire` makes the next acquire throw. */
    const countingNetwork = () => {
      const out = new Set<number>();
      let next = 0;
      const net = {
        mode: "tap" as const,
        failAcquire: false,
        out,
        recover: async () => ({
          kept: [],
          missing: [],
          removedNamespaces: [],
          removedLinks: [],
          replacedHostTable: false,
        }),
        acquire: async () => {
          if (net.failAcquire) throw new ResourceExhaustedError("network: every slot is in use");
          const index = next++;
          out.add(index);
          return { mode: "tap", index } as unknown as NetworkSlot;
        },
        release: async (slot: NetworkSlot) => {
          out.delete((slot as { index: number }).index);
        },
        close: async () => {},
        describeCommands: () => [],
      };
      return net;
    };
    const tapCreate = (id: string) =>
      manager.create({ id, labels: {}, ttlSeconds: 0, network: "tap" });

    it("the directory cannot be made: the slot, the admission and the id are given back", async () => {
      const net = countingNetwork();
      make({ maxSandboxes: 1, maxConcurrentCreates: 1 }, net as unknown as NetworkManager);
      await manager.recover();

      await mkdir(join(dataDir, "sandboxes"), { recursive: true });
      await writeFile(join(dataDir, "sandboxes", "u1"), "in the way");
      await expect(tapCreate("u1")).rejects.toThrow(/already exists/);
      expect(net.out.size).toBe(0);
      expect(() => manager.inspect("u1")).toThrow(/not found/);
      await rm(join(dataDir, "sandboxes", "u1"));
      // The only admission slot and concurrent-create slot are free again, and so is the id.
      failOn.add("createSyncAction"); // no VM needed: the boot fails after registration
      await expect(tapCreate("u1")).resolves.toMatchObject({ id: "u1", state: "starting" });
      await settle("u1", "failed");
      expect(net.out.size).toBe(0); // a failure releases the slot at once
      await manager.remove("u1", { force: true });
      expect(await sandboxDirs().catch(() => [])).toEqual([]); // no directory was even made
    });

    it("no slot to be had: nothing is created and the admission is given back", async () => {
      const net = countingNetwork();
      make({ maxSandboxes: 1, maxConcurrentCreates: 1 }, net as unknown as NetworkManager);
      await manager.recover();
      net.failAcquire = true;
      await expect(tapCreate("u2")).rejects.toBeInstanceOf(ResourceExhaustedError);
      expect(await sandboxDirs().catch(() => [])).toEqual([]);
      net.failAcquire = false;
      failOn.add("createSyncAction");
      await expect(tapCreate("u2")).resolves.toMatchObject({ id: "u2" });
      await settle("u2", "failed");
      await manager.remove("u2", { force: true });
      expect(net.out.size).toBe(0);
    });
  });
});

import type {
  AdoptTarget,
  CallOptions,
  ExitStatus,
  FirecrackerLauncher,
  FirecrackerProcess,
  LaunchOptions,
  SnapshotLoadParams,
} from "@vmm/firecracker";
import type { TapSlot } from "../network/index.js";
import type { SandboxDir } from "../storage/index.js";
import { firecrackerCallError } from "./firecracker-errors.js";
import {
  isJailed,
  JAILED_KERNEL,
  type JailOwner,
  snapshotOutOfJail,
  stageDiskFiles,
  stageKernel,
} from "./jail-staging.js";

/** What to boot: everything Firecracker needs, with paths relative to the sandbox dir. */
export interface BootSpec {
  readonly dir: SandboxDir;
  /** Absolute path of the kernel image (read-only base image). */
  readonly kernelPath: string;
  /** Full kernel command line. */
  readonly bootArgs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  /** The slot's namespace and TAP; undefined = no NIC. */
  readonly net: TapSlot | undefined;
  /** Guest CID of the vsock device (>= 3). */
  readonly vsockCid: number;
  /**
   * Settles when the writable rootfs is in place. Firecracker opens it only at
   * `PUT /drives`, so the clone overlaps with spawning and the first calls.
   */
  readonly rootfsReady: Promise<unknown>;
}

/** What to restore: a sandbox dir whose snapshot files are being put in place. */
export interface RestoreSpec {
  readonly dir: SandboxDir;
  readonly net: TapSlot | undefined;
  /**
   * Settles when the vmstate, memory file and disk are in the sandbox dir;
   * `snapshot/load` waits for it (the files are prepared while Firecracker starts).
   */
  readonly filesReady: Promise<unknown>;
  /** `snapshot/load` body (paths relative to the sandbox dir). */
  readonly load: SnapshotLoadParams;
  /** Deadline of `snapshot/load` (it reads the whole vmstate), ms. */
  readonly loadTimeoutMs: number;
}

/** How the daemon starts Firecracker (binary, launcher, flags): fixed per daemon. */
export interface VmmRuntime {
  readonly launcher: FirecrackerLauncher;
  readonly launchDefaults: Omit<LaunchOptions, "workDir" | "id" | "netns" | "cleanupPaths">;
  /** Deadline of one Firecracker API call, ms. */
  readonly apiTimeoutMs: number;
  /**
   * The jail uid/gid when `launcher` is the jailer: the files Firecracker opens are then staged
   * into its chroot (hard links owned by it) and snapshots taken out (jail-staging.ts).
   */
  readonly jailOwner?: JailOwner;
}

/** What the VM was doing when it was adopted. */
export type AdoptedVmState = "running" | "resumed" | "not-started";

/** The launch options of the sandbox in `dir` (the same for launching and adopting). */
function launchOptions(runtime: VmmRuntime, dir: SandboxDir, net: TapSlot | undefined) {
  const rel = dir.relative;
  return {
    ...runtime.launchDefaults,
    workDir: dir.path,
    id: dir.id,
    ...(net && { netns: net.netns }),
    consoleLogPath: rel.consoleLog,
    cleanupPaths: [rel.vsockSocket],
  };
}

/**
 * Runs `use` on a process just launched or adopted; if it fails, the process
 * is killed and its sockets removed before the error (translated into a
 * domain error) propagates.
 */
async function settleProcess<T>(
  fc: FirecrackerProcess,
  sandboxId: string,
  use: () => Promise<T>,
): Promise<T> {
  try {
    return await use();
  } catch (err) {
    await fc[Symbol.asyncDispose]();
    throw firecrackerCallError(err, sandboxId);
  }
}

/**
 * One sandbox's microVM: the only holder of its Firecracker process and API
 * client. Created by {@link MicroVm.boot}, {@link MicroVm.restore} or
 * {@link MicroVm.adopt}; each leaves nothing behind when it fails. Every
 * Firecracker refusal reaches callers as a domain error
 * (`firecrackerCallError`: 4xx → FailedPrecondition with the fault message).
 */
export class MicroVm {
  #exited = false;

  private constructor(
    private readonly fc: FirecrackerProcess,
    /** The sandbox it belongs to (named in errors). */
    readonly sandboxId: string,
    private readonly apiTimeoutMs: number,
    /** Set when Firecracker is jailed: where snapshots are taken out to. */
    private readonly jailedDir?: SandboxDir,
  ) {
    void fc.exited.then(() => {
      this.#exited = true;
    });
  }

  /** True once the process is known to be gone. */
  get hasExited(): boolean {
    return this.#exited;
  }

  /**
   * Boots a microVM: launches Firecracker in the sandbox dir (its cwd) and
   * configures it with relative paths (ARCHITECTURE decision 3), then
   * InstanceStart. On failure the process is killed and its sockets removed
   * before the error propagates (also when `rootfsReady` rejects).
   */
  static async boot(runtime: VmmRuntime, spec: BootSpec, signal: AbortSignal): Promise<MicroVm> {
    const rel = spec.dir.relative;
    const fc = await runtime.launcher.launch(launchOptions(runtime, spec.dir, spec.net), signal);
    const owner = jailOwnerOf(runtime, fc, spec.dir);
    return settleProcess(fc, spec.dir.id, async () => {
      const call = { signal, timeoutMs: runtime.apiTimeoutMs };
      const api = fc.client;
      await api.putMachineConfiguration(
        { vcpu_count: spec.vcpus, mem_size_mib: spec.memoryMib },
        call,
      );
      if (owner) await stageKernel(fc, spec.kernelPath, owner);
      // The kernel is a read-only base image outside the sandbox dir: absolute (jailed: linked in).
      await api.putGuestBootSource(
        { kernel_image_path: owner ? JAILED_KERNEL : spec.kernelPath, boot_args: spec.bootArgs },
        call,
      );
      // Firecracker opens the file at this call: the clone must be complete.
      await spec.rootfsReady;
      if (owner) await stageDiskFiles(fc, spec.dir, [spec.dir.relative.rootfs], owner);
      await api.putGuestDriveByID(
        { drive_id: "rootfs", path_on_host: rel.rootfs, is_root_device: true, is_read_only: false },
        call,
      );
      if (spec.net) {
        await api.putGuestNetworkInterfaceByID(
          { iface_id: "eth0", host_dev_name: spec.net.tapName, guest_mac: spec.net.guestMac },
          call,
        );
      }
      await api.putGuestVsock({ guest_cid: spec.vsockCid, uds_path: rel.vsockSocket }, call);
      await api.createSyncAction({ action_type: "InstanceStart" }, call);
      return new MicroVm(fc, spec.dir.id, runtime.apiTimeoutMs, owner && spec.dir);
    });
  }

  /**
   * A microVM from a snapshot: launches Firecracker in the sandbox dir, waits
   * for the files, then `snapshot/load` (resumed). Firecracker's refusal (a
   * vmstate that does not verify, a missing memory file) is a
   * FailedPreconditionError with its fault message; on any failure the
   * process is gone before the error propagates (a process that failed a
   * load cannot be reused, NOTES.md §3) and no file copy is still writing.
   */
  static async restore(
    runtime: VmmRuntime,
    spec: RestoreSpec,
    signal: AbortSignal,
  ): Promise<MicroVm> {
    const fc = await runtime.launcher
      .launch(launchOptions(runtime, spec.dir, spec.net), signal)
      .catch(async (err: unknown) => {
        await spec.filesReady.catch(() => {}); // never leave a copy writing into a dir being removed
        throw err;
      });
    const owner = jailOwnerOf(runtime, fc, spec.dir);
    return settleProcess(fc, spec.dir.id, async () => {
      await spec.filesReady;
      if (owner) {
        const { load } = spec;
        const mem = load.mem_backend?.backend_path ?? load.mem_file_path;
        const files = [load.snapshot_path, spec.dir.relative.rootfs, ...(mem ? [mem] : [])];
        await stageDiskFiles(fc, spec.dir, files, owner);
      }
      await fc.client.loadSnapshot(spec.load, { signal, timeoutMs: spec.loadTimeoutMs });
      return new MicroVm(fc, spec.dir.id, runtime.apiTimeoutMs, owner && spec.dir);
    });
  }

  /**
   * Re-attaches to the microVM of `dir` found running (left by an earlier
   * daemon): the launcher refuses a pid that is gone or reused (start time,
   * `--id`, cwd); then the API must answer within `signal`. A VM found paused
   * (a checkpoint cut short by the daemon's death) is resumed. If the process
   * is ours but the API does not answer, it is killed before the error
   * propagates.
   */
  static async adopt(
    runtime: VmmRuntime,
    spec: { dir: SandboxDir; net: TapSlot | undefined; target: AdoptTarget },
    signal: AbortSignal,
  ): Promise<{ vm: MicroVm; state: AdoptedVmState }> {
    const fc = await runtime.launcher.adopt(
      launchOptions(runtime, spec.dir, spec.net),
      spec.target,
      signal,
    );
    return settleProcess<{ vm: MicroVm; state: AdoptedVmState }>(fc, spec.dir.id, async () => {
      const call = { signal, timeoutMs: runtime.apiTimeoutMs };
      const vm = new MicroVm(
        fc,
        spec.dir.id,
        runtime.apiTimeoutMs,
        jailOwnerOf(runtime, fc, spec.dir) && spec.dir,
      );
      const info = await fc.client.describeInstance(call);
      if (info.state === "Not started") return { vm, state: "not-started" };
      if (info.state === "Paused") {
        await fc.client.patchVm({ state: "Resumed" }, call);
        return { vm, state: "resumed" };
      }
      return { vm, state: "running" };
    });
  }

  /** Firecracker's pid. */
  get pid(): number {
    return this.fc.pid;
  }

  /** The process's start time, recorded so a later daemon adopts only this process. */
  get startTime(): string | undefined {
    return this.fc.startTime;
  }

  /** Resolves once the process is gone (never rejects; both fields null for an adopted one). */
  get exited(): Promise<ExitStatus> {
    return this.fc.exited;
  }

  /** Pauses the guest's vCPUs. */
  pause(call: CallOptions = this.call()): Promise<void> {
    return this.api(() => this.fc.client.patchVm({ state: "Paused" }, call));
  }

  /** Resumes a paused guest. */
  resume(call: CallOptions = this.call()): Promise<void> {
    return this.api(() => this.fc.client.patchVm({ state: "Resumed" }, call));
  }

  /**
   * Takes a Full snapshot: pause, `snapshot/create` to `target` (relative to
   * its cwd), `whilePaused` (copy what must be copied while the guest cannot
   * write: its disk), then resume, always. A failure to resume is reported to
   * `onResumeError` (the snapshot itself is fine).
   */
  async snapshot(
    target: { readonly vmstate: string; readonly mem: string },
    call: CallOptions,
    whilePaused: () => Promise<void>,
    onResumeError: (err: unknown) => void,
  ): Promise<void> {
    await this.pause(call);
    try {
      await this.createSnapshot(target, call);
      await whilePaused();
    } finally {
      await this.resume(call).catch(onResumeError);
    }
  }

  /**
   * Writes the whole VM to disk for a Pause: pause, then a Full
   * `snapshot/create` to `target` (relative to its cwd). The VM stays paused
   * on success (the caller ends the process); if the snapshot is refused it is
   * resumed before the error propagates.
   */
  async pauseToDisk(
    target: { readonly vmstate: string; readonly mem: string },
    call: CallOptions,
  ): Promise<void> {
    await this.pause(call);
    try {
      await this.createSnapshot(target, call);
    } catch (err) {
      await this.resume(call).catch(() => {});
      throw err;
    }
  }

  /**
   * Asks the guest to shut down (`SendCtrlAltDel`); resolves when Firecracker
   * accepted the request, not when the guest is down (await `exited`).
   */
  requestShutdown(call: CallOptions = this.call()): Promise<void> {
    return this.api(() => this.fc.client.createSyncAction({ action_type: "SendCtrlAltDel" }, call));
  }

  /** SIGKILL (no wait); no-op once exited. */
  kill(): void {
    this.fc.kill();
  }

  /**
   * Kills the process, waits for its exit and removes its sockets (and jail).
   * Idempotent. A cleanup failure is reported to `onCleanupError`: the process
   * is gone either way.
   */
  async dispose(onCleanupError: (err: unknown) => void = () => {}): Promise<void> {
    this.fc.kill();
    await this.fc.exited;
    await this.fc.cleanup().catch(onCleanupError);
  }

  /**
   * Lets go of the process without stopping it (a daemon leaving VMs running
   * for the next one, which adopts them). `exited` then never settles.
   */
  detach(): void {
    this.fc.detach();
  }

  /** A Full `snapshot/create` to `target`; jailed, written in the jail and taken out by hard link. */
  private async createSnapshot(
    target: { readonly vmstate: string; readonly mem: string },
    call: CallOptions,
  ): Promise<void> {
    const create = (t: { readonly vmstate: string; readonly mem: string }) =>
      this.api(() =>
        this.fc.client.createSnapshot(
          { snapshot_type: "Full", snapshot_path: t.vmstate, mem_file_path: t.mem },
          call,
        ),
      );
    if (this.jailedDir) await snapshotOutOfJail(this.fc, this.jailedDir, target, create);
    else await create(target);
  }

  private call(): CallOptions {
    return { timeoutMs: this.apiTimeoutMs };
  }

  private async api(send: () => Promise<unknown>): Promise<void> {
    try {
      await send();
    } catch (err) {
      throw firecrackerCallError(err, this.sandboxId);
    }
  }
}

/** The jail owner when `fc` runs jailed (the runtime names one and its root is not the dir). */
function jailOwnerOf(
  runtime: VmmRuntime,
  fc: FirecrackerProcess,
  dir: SandboxDir,
): JailOwner | undefined {
  return runtime.jailOwner && isJailed(fc, dir) ? runtime.jailOwner : undefined;
}

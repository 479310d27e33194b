import type {
  AdoptTarget,
  FirecrackerLauncher,
  FirecrackerProcess,
  LaunchOptions,
} from "@vmm/firecracker";
import type { TapSlot } from "../network/index.js";
import type { SandboxDir } from "../storage/index.js";

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

/** How the daemon starts Firecracker (binary, launcher, flags): fixed per daemon. */
export interface VmmRuntime {
  readonly launcher: FirecrackerLauncher;
  readonly launchDefaults: Omit<LaunchOptions, "workDir" | "id" | "netns" | "cleanupPaths">;
  /** Deadline of one Firecracker API call, ms. */
  readonly apiTimeoutMs: number;
}

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

/** What the VM was doing when it was adopted. */
export type AdoptedVmState = "running" | "resumed" | "not-started";

/**
 * Re-attaches to the microVM of `dir` found running (left by an earlier
 * daemon): the launcher refuses a pid that is gone or reused; then the API
 * must answer within `signal`. A VM found paused (a checkpoint cut short by
 * the daemon's death) is resumed. If the process is ours but the API does not
 * answer, it is killed before the error propagates.
 */
export async function adoptMicroVm(
  runtime: VmmRuntime,
  spec: { dir: SandboxDir; net: TapSlot | undefined; target: AdoptTarget },
  signal: AbortSignal,
): Promise<{ fc: FirecrackerProcess; state: AdoptedVmState }> {
  const fc = await runtime.launcher.adopt(
    launchOptions(runtime, spec.dir, spec.net),
    spec.target,
    signal,
  );
  try {
    const call = { signal, timeoutMs: runtime.apiTimeoutMs };
    const info = await fc.client.describeInstance(call);
    if (info.state === "Not started") return { fc, state: "not-started" };
    if (info.state === "Paused") {
      await fc.client.patchVm({ state: "Resumed" }, call);
      return { fc, state: "resumed" };
    }
    return { fc, state: "running" };
  } catch (err) {
    await fc[Symbol.asyncDispose]();
    throw err;
  }
}

/**
 * Boots a microVM: launches Firecracker in the sandbox dir (its cwd) and
 * configures it with relative paths (ARCHITECTURE decision 3), then
 * InstanceStart. On failure the process is killed and its sockets removed
 * before the error propagates (also when `rootfsReady` rejects).
 */
export async function bootMicroVm(
  runtime: VmmRuntime,
  spec: BootSpec,
  signal: AbortSignal,
): Promise<FirecrackerProcess> {
  const rel = spec.dir.relative;
  const fc = await runtime.launcher.launch(launchOptions(runtime, spec.dir, spec.net), signal);
  try {
    const call = { signal, timeoutMs: runtime.apiTimeoutMs };
    const api = fc.client;
    await api.putMachineConfiguration(
      { vcpu_count: spec.vcpus, mem_size_mib: spec.memoryMib },
      call,
    );
    // The kernel is a read-only base image outside the sandbox dir: absolute.
    await api.putGuestBootSource(
      { kernel_image_path: spec.kernelPath, boot_args: spec.bootArgs },
      call,
    );
    // Firecracker opens the file at this call: the clone must be complete.
    await spec.rootfsReady;
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
    return fc;
  } catch (err) {
    await fc[Symbol.asyncDispose]();
    throw err;
  }
}

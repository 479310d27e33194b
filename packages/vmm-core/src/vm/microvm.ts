import type {
  AdoptTarget,
  CallOptions,
  FirecrackerLauncher,
  FirecrackerProcess,
  LaunchOptions,
  SnapshotLoadParams,
} from "@vmm/firecracker";
import type { TapSlot } from "../network/index.js";
import type { SandboxDir } from "../storage/index.js";
import { firecrackerCallError } from "./firecracker-errors.js";

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
    throw firecrackerCallError(err, spec.dir.id);
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
    throw firecrackerCallError(err, spec.dir.id);
  }
}

/**
 * Loads a snapshot into a freshly launched Firecracker of sandbox `sandboxId`
 * (`snapshot/load`; paths relative to its cwd). Firecracker's refusal (a
 * vmstate that does not verify, a missing memory file) becomes a
 * FailedPreconditionError with its fault message; the process must then be
 * discarded (NOTES.md §3).
 */
export async function loadMicroVmSnapshot(
  fc: FirecrackerProcess,
  sandboxId: string,
  params: SnapshotLoadParams,
  call: CallOptions,
): Promise<void> {
  try {
    await fc.client.loadSnapshot(params, call);
  } catch (err) {
    throw firecrackerCallError(err, sandboxId);
  }
}

/**
 * Takes a Full snapshot of a running microVM: pause, `snapshot/create` to
 * `target` (relative to its cwd), `whilePaused` (copy what must be copied
 * while the guest cannot write: its disk), then resume, always. A failure to
 * resume is reported to `onResumeError` (the snapshot itself is fine); the
 * other Firecracker failures are translated (FirecrackerApiError 4xx →
 * FailedPreconditionError with the fault message).
 */
export async function snapshotMicroVm(
  fc: FirecrackerProcess,
  sandboxId: string,
  target: { readonly vmstate: string; readonly mem: string },
  call: CallOptions,
  whilePaused: () => Promise<void>,
  onResumeError: (err: unknown) => void,
): Promise<void> {
  try {
    await fc.client.patchVm({ state: "Paused" }, call);
  } catch (err) {
    throw firecrackerCallError(err, sandboxId);
  }
  try {
    try {
      await fc.client.createSnapshot(
        { snapshot_type: "Full", snapshot_path: target.vmstate, mem_file_path: target.mem },
        call,
      );
    } catch (err) {
      throw firecrackerCallError(err, sandboxId);
    }
    await whilePaused();
  } finally {
    await fc.client.patchVm({ state: "Resumed" }, call).catch(onResumeError);
  }
}

/**
 * Asks the guest to shut down (`SendCtrlAltDel`); resolves when Firecracker
 * accepted the request, not when the guest is down (await `fc.exited`).
 */
export async function requestMicroVmShutdown(
  fc: FirecrackerProcess,
  sandboxId: string,
  call: CallOptions,
): Promise<void> {
  try {
    await fc.client.createSyncAction({ action_type: "SendCtrlAltDel" }, call);
  } catch (err) {
    throw firecrackerCallError(err, sandboxId);
  }
}

import {
  accessSync,
  closeSync,
  constants,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { type FcLogger, parseLogLevel } from "./fc-logger.js";
import type { Guest } from "./guest.js";
import { holdGuestAddress } from "./guest-address.js";
import type { RootDrive } from "./guest-disk.js";
import type { Metrics } from "./metrics.js";
import { osError } from "./os-error.js";
import { decodeVmstate, encodeVmstate, VmstateError } from "./vmstate-file.js";
import { VsockDevice } from "./vsock-device.js";

/** An API-level failure: HTTP status (400, or 413 for MMDS) and Firecracker's fault_message. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

/** Thrown by a failed snapshot load: answered with 400, then the process exits 1 (like v1.14.2). */
export class FatalLoadError extends ApiError {}

type Obj = Record<string, unknown>;
export type VmState = "Not started" | "Running" | "Paused";

const notBefore = "The requested operation is not supported before starting the microVM.";
const notAfter = "The requested operation is not supported after starting the microVM.";
const mib = 1024 * 1024;
const defaultCmdline =
  "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce";

/** Everything a snapshot records (paths exactly as the client gave them, relative ones included). */
type VmConfig = {
  machine: Obj;
  bootSource: Obj | undefined;
  drives: Obj[];
  net: Obj[];
  vsock: Obj | undefined;
  balloon: Obj | undefined;
  entropy: Obj | undefined;
  mmdsConfig: Obj | undefined;
  pmem: Obj[];
  memoryHotplug: Obj | undefined;
  cpuConfig: Obj | undefined;
};

function defaultMachine(): Obj {
  return {
    vcpu_count: 1,
    mem_size_mib: 128,
    smt: false,
    track_dirty_pages: false,
    huge_pages: "None",
  };
}

/** Options of {@link Vmm}. */
export type VmmOptions = {
  instanceId: string;
  logger: FcLogger;
  metrics: Metrics;
  guest: Guest;
  enablePci: boolean;
  /** Max serialized MMDS store, in bytes. */
  mmdsSizeLimit: number;
  /** Ends the process (guest reboot → 0, fatal restore error → 1). */
  exit: (code: number) => void;
};

/**
 * The simulated VMM: configuration, the pre-boot/runtime split of the v1.14.2
 * controllers, and the effects the real one has on the host (files opened,
 * sockets bound, snapshot files written). Each method is one API action.
 */
export class Vmm {
  state: VmState = "Not started";
  private cfg: VmConfig = {
    machine: defaultMachine(),
    bootSource: undefined,
    drives: [],
    net: [],
    vsock: undefined,
    balloon: undefined,
    entropy: undefined,
    mmdsConfig: undefined,
    pmem: [],
    memoryHotplug: undefined,
    cpuConfig: undefined,
  };
  private bootSpecific = false;
  private vsockDev: VsockDevice | undefined;
  private mmds: unknown;
  private mmdsInitialized = false;
  private ctrlAltDelPending = false;
  private readonly o: VmmOptions;

  constructor(options: VmmOptions) {
    this.o = options;
  }

  /** Sets the initial MMDS store (`--metadata`). */
  setMetadata(value: unknown): void {
    this.putMmds(value);
  }

  private pre(): void {
    if (this.state !== "Not started") throw new ApiError(notAfter);
  }
  private post(): void {
    if (this.state === "Not started") throw new ApiError(notBefore);
  }

  // ---- GETs -------------------------------------------------------------------------------
  describeInstance(): Obj {
    return {
      id: this.o.instanceId,
      state: this.state,
      vmm_version: "1.14.2",
      app_name: "Firecracker",
    };
  }
  getMachineConfiguration(): Obj {
    return { ...this.cfg.machine };
  }
  getExportVmConfig(): Obj {
    const c = this.cfg;
    return {
      balloon: c.balloon ? this.balloonView() : null,
      drives: c.drives,
      "boot-source": c.bootSource ?? { kernel_image_path: "", initrd_path: null, boot_args: null },
      "cpu-config": null,
      logger: null,
      "machine-config": c.machine,
      metrics: null,
      "mmds-config": c.mmdsConfig ?? null,
      "network-interfaces": c.net,
      vsock: c.vsock ?? null,
      entropy: c.entropy ?? null,
      pmem: c.pmem,
      "memory-hotplug": c.memoryHotplug ?? null,
    };
  }
  private balloonView(): Obj {
    const b = this.cfg.balloon ?? {};
    return {
      amount_mib: b.amount_mib,
      deflate_on_oom: b.deflate_on_oom,
      stats_polling_interval_s: b.stats_polling_interval_s ?? 0,
      free_page_hinting: b.free_page_hinting ?? false,
      free_page_reporting: b.free_page_reporting ?? false,
    };
  }
  describeBalloonConfig(): Obj {
    if (!this.cfg.balloon) throw new ApiError("Balloon config error: No balloon device found.");
    return this.balloonView();
  }
  describeBalloonStats(): Obj {
    this.post();
    const b = this.cfg.balloon;
    if (!b)
      throw new ApiError("Internal VMM error: Failed perform action on device: Device not found");
    if (!b.stats_polling_interval_s)
      throw new ApiError("Balloon config error: Statistics for the balloon device are not enabled");
    const pages = Number(b.amount_mib) * 256;
    return {
      target_pages: pages,
      actual_pages: pages,
      target_mib: b.amount_mib,
      actual_mib: b.amount_mib,
    };
  }
  getMmds(): unknown {
    return this.mmdsInitialized ? this.mmds : {};
  }

  // ---- pre-boot configuration ---------------------------------------------------------------
  putMachineConfiguration(body: Obj, patch: boolean): void {
    if (patch && Object.keys(body).length === 0) throw new ApiError("Empty PATCH request.");
    this.pre();
    const base = patch ? this.cfg.machine : defaultMachine();
    const m: Obj = {
      ...base,
      ...Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null)),
    };
    if (!patch && body.cpu_template === undefined) delete m.cpu_template;
    const vcpus = Number(m.vcpu_count);
    if (vcpus < 1 || vcpus > 32 || (m.smt === true && vcpus > 1 && vcpus % 2 === 1)) {
      throw new ApiError(
        "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.",
      );
    }
    const mem = Number(m.mem_size_mib);
    if (mem === 0 || (m.huge_pages === "2M" && mem % 2 !== 0)) {
      throw new ApiError(
        "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.",
      );
    }
    this.cfg.machine = m;
    this.bootSpecific = true;
  }

  putCpuConfiguration(body: Obj): void {
    this.pre();
    this.cfg.cpuConfig = body;
    this.bootSpecific = true;
  }

  putGuestBootSource(body: Obj): void {
    this.pre();
    const kernel = String(body.kernel_image_path);
    try {
      closeSync(openSync(kernel, "r"));
    } catch (e) {
      throw new ApiError(`Boot source error: The kernel file cannot be opened: ${osError(e)}`);
    }
    if (typeof body.initrd_path === "string") {
      try {
        closeSync(openSync(body.initrd_path, "r"));
      } catch (e) {
        throw new ApiError(
          `Boot source error: The initrd file cannot be opened due to invalid path or invalid permissions. ${osError(e)}`,
        );
      }
    }
    if (typeof body.boot_args === "string" && body.boot_args.length > 2048) {
      throw new ApiError("Boot source error: The kernel command line is invalid: Too large");
    }
    this.cfg.bootSource = {
      kernel_image_path: kernel,
      initrd_path: body.initrd_path ?? null,
      boot_args: body.boot_args ?? null,
    };
    this.bootSpecific = true;
  }

  putGuestDriveById(body: Obj): void {
    this.pre();
    const id = String(body.drive_id);
    const isRoot = body.is_root_device === true;
    if (isRoot && this.cfg.drives.some((d) => d.is_root_device && d.drive_id !== id)) {
      throw new ApiError("Drive config error: A root block device already exists!");
    }
    if (body.socket !== undefined && body.socket !== null) {
      throw new ApiError(
        "Drive config error: Unable to create the vhost-user-block device: fc-sim does not simulate vhost-user backends",
      );
    }
    const path = body.path_on_host;
    if (typeof path !== "string") {
      throw new ApiError(
        "Drive config error: Unable to create the virtio block device: path_on_host is required",
      );
    }
    this.openDrive(
      path,
      body.is_read_only === true,
      (e) =>
        `Drive config error: Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: ${e} ${path}`,
    );
    const drive: Obj = {
      drive_id: id,
      partuuid: body.partuuid ?? null,
      is_root_device: isRoot,
      cache_type: body.cache_type ?? "Unsafe",
      is_read_only: body.is_read_only ?? false,
      path_on_host: path,
      rate_limiter: body.rate_limiter ?? null,
      io_engine: body.io_engine ?? "Sync",
      socket: null,
    };
    const i = this.cfg.drives.findIndex((d) => d.drive_id === id);
    if (i >= 0) this.cfg.drives[i] = drive;
    else this.cfg.drives.push(drive);
    this.bootSpecific = true;
  }

  private openDrive(path: string, readOnly: boolean, message: (e: string) => string): void {
    try {
      accessSync(path, readOnly ? constants.R_OK : constants.R_OK | constants.W_OK);
      if (!statSync(path).isFile() && !statSync(path).isBlockDevice())
        throw Object.assign(new Error(), { code: "EINVAL" });
    } catch (e) {
      throw new ApiError(message(osError(e)));
    }
  }

  putGuestPmemById(body: Obj): void {
    this.pre();
    const path = String(body.path_on_host);
    this.openDrive(
      path,
      body.read_only === true,
      (e) => `Pmem config error: Error accessing backing file: ${e}`,
    );
    if (
      body.root_device === true &&
      (this.cfg.drives.some((d) => d.is_root_device) ||
        this.cfg.pmem.some((p) => p.root_device && p.id !== body.id))
    ) {
      throw new ApiError(
        "Pmem config error: Attempt to add pmem as a root device while the root device defined as a block device",
      );
    }
    const p: Obj = {
      id: body.id,
      path_on_host: path,
      root_device: body.root_device ?? false,
      read_only: body.read_only ?? false,
    };
    const i = this.cfg.pmem.findIndex((x) => x.id === body.id);
    if (i >= 0) this.cfg.pmem[i] = p;
    else this.cfg.pmem.push(p);
    this.bootSpecific = true;
  }

  putGuestNetworkInterfaceById(body: Obj): void {
    this.pre();
    const tap = String(body.host_dev_name);
    if (tap.length === 0 || tap.length > 15) {
      throw new ApiError(
        `Network config error: Open tap device failed: Invalid interface name: ${tap}`,
      );
    }
    if (this.cfg.net.some((n) => n.host_dev_name === tap && n.iface_id !== body.iface_id)) {
      throw new ApiError(
        `Network config error: Open tap device failed: Error while creating ifreq structure: Device or resource busy (os error 16). Invalid TUN/TAP Backend provided by ${tap}. Check our documentation on setting up the network devices.`,
      );
    }
    const mac = body.guest_mac;
    if (typeof mac === "string" && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) {
      throw new ApiError(
        `An error occurred when deserializing the json body of a request: invalid MAC address: ${mac}`,
      );
    }
    const n: Obj = {
      iface_id: body.iface_id,
      host_dev_name: tap,
      guest_mac: mac ?? null,
      rx_rate_limiter: body.rx_rate_limiter ?? null,
      tx_rate_limiter: body.tx_rate_limiter ?? null,
    };
    const i = this.cfg.net.findIndex((x) => x.iface_id === body.iface_id);
    if (i >= 0) this.cfg.net[i] = n;
    else this.cfg.net.push(n);
    this.bootSpecific = true;
  }

  async putGuestVsock(body: Obj): Promise<void> {
    this.pre();
    // Replacing the device first drops (and unlinks) the previous socket, as v1.14.2 does.
    this.vsockDev?.close(true);
    this.vsockDev = undefined;
    const dev = await this.bindVsock(
      String(body.uds_path),
      (e) =>
        new ApiError(
          `Vsock config error: Cannot create backend for vsock device: Error binding to the host-side Unix socket: ${e}`,
        ),
    );
    this.vsockDev = dev;
    this.cfg.vsock = { guest_cid: body.guest_cid, uds_path: body.uds_path };
    this.bootSpecific = true;
  }

  private async bindVsock(path: string, err: (e: string) => ApiError): Promise<VsockDevice> {
    const dev = new VsockDevice(path, () =>
      this.o.guest.running ? this.o.guest.unixDir : undefined,
    );
    try {
      await dev.bind();
    } catch (e) {
      throw err(osError(e));
    }
    return dev;
  }

  putBalloon(body: Obj): void {
    this.pre();
    this.cfg.balloon = { ...body };
    this.bootSpecific = true;
  }

  putEntropyDevice(body: Obj): void {
    this.pre();
    this.cfg.entropy = { rate_limiter: body.rate_limiter ?? null };
    this.bootSpecific = true;
  }

  putMmdsConfig(body: Obj): void {
    this.pre();
    const ifaces = body.network_interfaces as string[];
    if (ifaces.length === 0) {
      throw new ApiError(
        "MMMDS config error: The list of network interface IDs that allow forwarding MMDS requests is empty.",
      );
    }
    if (ifaces.some((id) => !this.cfg.net.some((n) => n.iface_id === id))) {
      throw new ApiError(
        "MMMDS config error: The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.",
      );
    }
    const ip = (body.ipv4_address as string | undefined) ?? "169.254.169.254";
    const parts = ip.split(".").map(Number);
    if (
      parts.length !== 4 ||
      parts[0] !== 169 ||
      parts[1] !== 254 ||
      parts.some((p) => !(p >= 0 && p <= 255))
    ) {
      throw new ApiError("MMMDS config error: The MMDS IPv4 address is not link local.");
    }
    this.cfg.mmdsConfig = {
      version: body.version ?? "V1",
      network_interfaces: ifaces,
      ipv4_address: ip,
      imds_compat: body.imds_compat ?? false,
    };
    this.bootSpecific = true;
  }

  putMemoryHotplug(body: Obj): void {
    this.pre();
    const total = Number(body.total_size_mib);
    const slot = Number(body.slot_size_mib ?? 128);
    const block = Number(body.block_size_mib ?? 2);
    const pow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
    if (
      slot < 128 ||
      !pow2(slot) ||
      block < 2 ||
      !pow2(block) ||
      total % slot !== 0 ||
      slot % block !== 0
    ) {
      throw new ApiError(
        "Memory hotplug config error: invalid slot/block size or total size not a multiple of the slot size",
      );
    }
    this.cfg.memoryHotplug = { total_size_mib: total, slot_size_mib: slot, block_size_mib: block };
    this.bootSpecific = true;
  }

  putLogger(body: Obj, logger: FcLogger): void {
    this.pre();
    if (typeof body.level === "string") {
      const l = parseLogLevel(body.level);
      if (!l)
        throw new ApiError(
          "An error occurred when deserializing the json body of a request: Invalid LevelFilter",
        );
      logger.level = l;
    }
    if (typeof body.log_path === "string") {
      try {
        logger.setPath(body.log_path);
      } catch (e) {
        throw new ApiError(`Logger error: Failed to open target file: ${osError(e)}`);
      }
    }
    if (typeof body.show_level === "boolean") logger.showLevel = body.show_level;
    if (typeof body.show_log_origin === "boolean") logger.showOrigin = body.show_log_origin;
    if (typeof body.module === "string") logger.module = body.module;
  }

  putMetrics(body: Obj): void {
    this.pre();
    if (this.o.metrics.initialized) {
      throw new ApiError(
        "Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.",
      );
    }
    try {
      this.o.metrics.init(String(body.metrics_path));
    } catch (e) {
      throw new ApiError(
        `Metrics error: Cannot initialize the metrics system due to bad user input: ${osError(e)}`,
      );
    }
  }

  putSerial(body: Obj): void {
    this.pre();
    if (typeof body.serial_out_path === "string") {
      try {
        closeSync(
          openSync(
            body.serial_out_path,
            constants.O_WRONLY | constants.O_CREAT | constants.O_NONBLOCK,
            0o644,
          ),
        );
      } catch (e) {
        throw new ApiError(`Failed to open serial output: ${osError(e)}`);
      }
    }
  }

  // ---- MMDS (any phase) ------------------------------------------------------------------
  putMmds(value: unknown): void {
    if (JSON.stringify(value).length > this.o.mmdsSizeLimit) {
      throw new ApiError("MMDS limit exceeded error: The MMDS patch request doesn't fit.", 413);
    }
    this.mmds = value;
    this.mmdsInitialized = true;
  }
  patchMmds(patch: unknown): void {
    if (!this.mmdsInitialized)
      throw new ApiError("MMDS error: The MMDS data store is not initialized.");
    const merged = mergePatch(this.mmds, patch);
    if (JSON.stringify(merged).length > this.o.mmdsSizeLimit) {
      throw new ApiError("MMDS limit exceeded error: The MMDS patch request doesn't fit.", 413);
    }
    this.mmds = merged;
  }

  // ---- actions -----------------------------------------------------------------------------
  async createSyncAction(body: Obj): Promise<() => void> {
    const t = body.action_type;
    if (t === "InstanceStart") {
      this.pre();
      this.instanceStart();
      return () => {};
    }
    this.post();
    if (t === "FlushMetrics") {
      this.o.metrics.flush();
      return () => {};
    }
    // SendCtrlAltDel: the guest reboots (reboot=k) → the process exits 0, after the response.
    this.ctrlAltDelPending = true;
    return () => {
      if (this.state === "Running") this.guestReboot("SendCtrlAltDel");
    };
  }

  private instanceStart(): void {
    const bs = this.cfg.bootSource;
    if (!bs)
      throw new ApiError("Start microvm error: Cannot start microvm without kernel configuration.");
    const elfErr =
      "Start microvm error: System configuration error: Cannot load kernel due to invalid memory configuration or invalid kernel image: Kernel Loader: failed to load ELF kernel image: Kernel Loader: ";
    let fd: number;
    try {
      fd = openSync(String(bs.kernel_image_path), "r");
    } catch {
      throw new ApiError(`${elfErr}Unable to read kernel image`);
    }
    const head = Buffer.alloc(4);
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])))
      throw new ApiError(`${elfErr}Invalid Elf magic number`);
    this.o.logger.log(
      "Info",
      "main",
      "Successfully started microvm that was configured from one single json",
    );
    this.setRunning("Running");
    this.o.metrics.flush();
  }

  /** The kernel command line the guest sees (boot_args or the default, plus what FC appends). */
  cmdline(): string {
    const bs = this.cfg.bootSource;
    let c = typeof bs?.boot_args === "string" ? bs.boot_args : defaultCmdline;
    if (!this.o.enablePci && bs?.boot_args == null) c += " pci=off";
    const root = this.cfg.drives.find((d) => d.is_root_device);
    if (root) {
      c += typeof root.partuuid === "string" ? ` root=PARTUUID=${root.partuuid}` : " root=/dev/vda";
      c += root.is_read_only ? " ro" : " rw";
    }
    return c;
  }

  /** The root block device, which a disk guest (guest-disk.ts) mounts as its `/`. */
  private rootDrive(): RootDrive | undefined {
    const root = this.cfg.drives.find((d) => d.is_root_device);
    return root && { path: String(root.path_on_host), readOnly: root.is_read_only === true };
  }

  private setRunning(state: "Running" | "Paused"): void {
    this.state = state;
    const guest = this.o.guest;
    if (state === "Running") {
      if (!guest.running) {
        const cmdline = this.cmdline();
        if (this.cfg.net.length > 0) {
          holdGuestAddress(cmdline, (why) =>
            this.o.logger.log("Warn", "fc_vmm", `fc-sim: guest address not held: ${why}`),
          );
        }
        guest.start(cmdline, this.rootDrive());
      } else guest.freeze(false);
      this.vsockDev?.setRunning(true);
      if (this.ctrlAltDelPending) this.guestReboot("SendCtrlAltDel");
    } else {
      guest.freeze(true);
      this.vsockDev?.setRunning(false);
    }
  }

  /** The guest rebooted (CtrlAltDel or its init died): Firecracker exits 0. */
  guestReboot(why: string): void {
    this.o.logger.log("Info", "fc_vcpu 0", `Received KVM_EXIT_SHUTDOWN signal (${why})`);
    this.o.exit(0);
  }

  async patchVm(body: Obj): Promise<void> {
    this.post();
    const target = body.state === "Paused" ? "Paused" : "Running";
    if (this.state === target) return;
    this.setRunning(target);
    if (target === "Paused") {
      // fc-sim snapshots keep no guest memory: what the guest wrote must be in its disk.
      await this.o.guest.flushDisk().catch((e: unknown) => {
        this.o.logger.log("Error", "fc_vcpu 0", `fc-sim: ${(e as Error).message}`);
      });
    }
  }

  // ---- runtime updates -------------------------------------------------------------------
  patchGuestDriveById(body: Obj): void {
    this.post();
    const d = this.cfg.drives.find((x) => x.drive_id === body.drive_id);
    const fail = (m: string): ApiError =>
      new ApiError(
        `Drive config error: Unable to patch the block device: ${m} Please verify the request arguments.`,
      );
    if (!d) throw fail("Failed perform action on device: Device not found");
    if (body.path_on_host === undefined && body.rate_limiter === undefined)
      throw fail("Block: Running method expected different backend.");
    if (typeof body.path_on_host === "string") {
      const p = body.path_on_host;
      this.openDrive(
        p,
        d.is_read_only === true,
        (e) =>
          `Drive config error: Unable to patch the block device: Virtio backend error: Error manipulating the backing file: ${e} ${p} Please verify the request arguments.`,
      );
      d.path_on_host = p;
    }
    if (body.rate_limiter !== undefined) d.rate_limiter = body.rate_limiter;
  }

  patchGuestNetworkInterfaceById(body: Obj): void {
    this.post();
    const n = this.cfg.net.find((x) => x.iface_id === body.iface_id);
    if (!n)
      throw new ApiError(
        "Network config error: Unable to update the net device: Failed perform action on device: Device not found",
      );
    if (body.rx_rate_limiter !== undefined) n.rx_rate_limiter = body.rx_rate_limiter;
    if (body.tx_rate_limiter !== undefined) n.tx_rate_limiter = body.tx_rate_limiter;
  }

  patchBalloon(body: Obj, what: "amount" | "stats" | "hint-start" | "hint-stop"): void {
    this.post();
    const b = this.cfg.balloon;
    if (!b)
      throw new ApiError("Balloon update error: Failed perform action on device: Device not found");
    if (what === "amount") b.amount_mib = body.amount_mib;
    else if (what === "stats") {
      if (
        (Number(b.stats_polling_interval_s ?? 0) === 0) !==
        (Number(body.stats_polling_interval_s) === 0)
      ) {
        throw new ApiError(
          "Balloon update error: Cannot enable/disable the statistics after boot.",
        );
      }
      b.stats_polling_interval_s = body.stats_polling_interval_s;
    } else if (!b.free_page_hinting) {
      throw new ApiError("Balloon update error: Free page hinting is not enabled.");
    }
  }

  getBalloonHintingStatus(): Obj {
    this.post();
    if (!this.cfg.balloon)
      throw new ApiError("Balloon update error: Failed perform action on device: Device not found");
    return { host_cmd: 0, guest_cmd: null };
  }

  getMemoryHotplug(): Obj {
    this.post();
    const h = this.cfg.memoryHotplug;
    if (!h)
      throw new ApiError("Internal VMM error: Failed perform action on device: Device not found");
    return {
      ...h,
      plugged_size_mib: h.requested_size_mib ?? 0,
      requested_size_mib: h.requested_size_mib ?? 0,
    };
  }

  patchMemoryHotplug(body: Obj): void {
    this.post();
    const h = this.cfg.memoryHotplug;
    if (!h)
      throw new ApiError(
        "Memory hotplug update error: Failed perform action on device: Device not found",
      );
    const req = Number(body.requested_size_mib);
    if (req > Number(h.total_size_mib) || req % Number(h.block_size_mib) !== 0) {
      throw new ApiError("Memory hotplug update error: Invalid requested size");
    }
    h.requested_size_mib = req;
  }

  // ---- snapshots ---------------------------------------------------------------------------
  createSnapshot(body: Obj): void {
    this.post();
    if (this.state !== "Paused") {
      throw new ApiError(
        "Create snapshot error: Cannot save the microVM state: Operation not allowed: save/restore unavailable while running",
      );
    }
    const state = { fcSim: 1, config: this.cfg, snapshotType: body.snapshot_type ?? "Full" };
    try {
      writeFileSync(String(body.snapshot_path), encodeVmstate(state));
    } catch (e) {
      throw new ApiError(
        `Create snapshot error: Cannot perform open on the snapshot backing file: ${osError(e)}`,
      );
    }
    const bytes =
      (Number(this.cfg.machine.mem_size_mib) +
        Number(this.cfg.memoryHotplug?.total_size_mib ?? 0)) *
      mib;
    try {
      // Sparse: the simulated guest has no memory to write, only the size is real.
      const fd = openSync(
        String(body.mem_file_path),
        constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
        0o644,
      );
      try {
        ftruncateSync(fd, bytes);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new ApiError(
        `Create snapshot error: Cannot write memory file: Memory snapshot error: ${osError(e)}`,
      );
    }
    this.vsockDev?.queueTransportReset();
  }

  async loadSnapshot(body: Obj): Promise<void> {
    this.pre();
    if (this.bootSpecific) {
      throw new ApiError(
        "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.",
      );
    }
    const fatal = (m: string): FatalLoadError =>
      new FatalLoadError(`Load snapshot error: Failed to restore from snapshot: ${m}`);
    const stateErr = "Failed to get snapshot state from file: ";
    let raw: Buffer;
    try {
      raw = readFileSync(String(body.snapshot_path));
    } catch (e) {
      throw fatal(`${stateErr}Failed to open snapshot file: ${osError(e)}`);
    }
    let cfg: VmConfig;
    try {
      cfg = (decodeVmstate(raw) as { config: VmConfig }).config;
    } catch (e) {
      throw fatal(`${stateErr}${e instanceof VmstateError ? e.message : String(e)}`);
    }
    for (const o of (body.network_overrides as Obj[] | undefined) ?? []) {
      const n = cfg.net.find((x) => x.iface_id === o.iface_id);
      if (!n) throw fatal(`${stateErr}Unknown Network Device.`);
      n.host_dev_name = o.host_dev_name;
    }
    const backend = (body.mem_backend as Obj | undefined) ?? {
      backend_type: "File",
      backend_path: body.mem_file_path,
    };
    const memErr = "Failed to load guest memory: Error creating guest memory from file: ";
    if (backend.backend_type === "Uffd") {
      throw fatal(
        `${memErr}fc-sim cannot serve a Uffd memory backend (no userfaultfd in a simulator)`,
      );
    }
    const need =
      (Number(cfg.machine.mem_size_mib) + Number(cfg.memoryHotplug?.total_size_mib ?? 0)) * mib;
    let size: number;
    try {
      size = statSync(String(backend.backend_path)).size;
      accessSync(String(backend.backend_path), constants.R_OK);
    } catch (e) {
      throw fatal(`${memErr}Failed to load guest memory: ${osError(e)}`);
    }
    if (size < need)
      throw fatal(
        `${memErr}Failed to restore guest memory: Total sum of memory regions exceeds largest possible file offset`,
      );
    for (const d of cfg.drives) {
      // Recorded paths are re-opened as given: relative ones against THIS process's cwd.
      const p = String(d.path_on_host);
      try {
        this.openDrive(p, d.is_read_only === true, (e) => e);
      } catch (e) {
        throw fatal(
          `Failed to build microVM from snapshot: Failed to restore devices: Error restoring MMIO devices: Block: Virtio backend error: Error manipulating the backing file: ${(e as Error).message} ${p}`,
        );
      }
    }
    this.cfg = cfg;
    if (
      typeof body.track_dirty_pages === "boolean" ||
      typeof body.enable_diff_snapshots === "boolean"
    ) {
      this.cfg.machine.track_dirty_pages =
        body.track_dirty_pages === true || body.enable_diff_snapshots === true;
    }
    if (cfg.vsock) {
      this.vsockDev = await this.bindVsock(String(cfg.vsock.uds_path), (e) =>
        fatal(
          `Failed to build microVM from snapshot: Failed to restore devices: Error restoring MMIO devices: VsockUnixBackend: Error binding to the host-side Unix socket: ${e}`,
        ),
      );
    }
    this.setRunning(body.resume_vm === true ? "Running" : "Paused");
    this.o.metrics.flush();
  }
}

/** RFC 7396 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Obj =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Obj) }
      : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

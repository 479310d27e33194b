/**
 * Request and response bodies of the Firecracker v1.14 API (`shared/firecracker/firecracker-v1.14.yaml`),
 * hand-written. Each type has a runtime `XKeys` list (every property the spec declares) and an
 * `XRequired` list beside it; `api-types.spec.ts` compares both with the spec, so a field 1.14.2
 * does not know (a hard 400, NOTES.md §9) cannot creep in.
 */

/** `TokenBucket`: `size` tokens refilled every `refill_time` ms; 0 in either = unlimited. */
export interface TokenBucket {
  size: number;
  refill_time: number;
  one_time_burst?: number;
}
export const TokenBucketKeys = ["size", "refill_time", "one_time_burst"] as const;
export const TokenBucketRequired = ["size", "refill_time"] as const;

/** `RateLimiter`: bandwidth tokens are bytes, ops tokens are requests. */
export interface RateLimiter {
  bandwidth?: TokenBucket;
  ops?: TokenBucket;
}
export const RateLimiterKeys = ["bandwidth", "ops"] as const;
export const RateLimiterRequired = [] as const;

/** `InstanceInfo` (`GET /`). */
export interface InstanceInfo {
  app_name: string;
  id: string;
  state: "Not started" | "Running" | "Paused";
  vmm_version: string;
}
export const InstanceInfoKeys = ["app_name", "id", "state", "vmm_version"] as const;
export const InstanceInfoRequired = ["app_name", "id", "state", "vmm_version"] as const;

/** `FirecrackerVersion` (`GET /version`). */
export interface FirecrackerVersion {
  firecracker_version: string;
}
export const FirecrackerVersionKeys = ["firecracker_version"] as const;
export const FirecrackerVersionRequired = ["firecracker_version"] as const;

/** `CpuTemplate` (deprecated static templates). */
export type CpuTemplate = "C3" | "T2" | "T2S" | "T2CL" | "T2A" | "V1N1" | "None";

/** `MachineConfiguration`. PUT resets omitted optionals to defaults; PATCH merges. */
export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: "None" | "2M";
  cpu_template?: CpuTemplate;
}
export const MachineConfigurationKeys = [
  "vcpu_count",
  "mem_size_mib",
  "smt",
  "track_dirty_pages",
  "huge_pages",
  "cpu_template",
] as const;
export const MachineConfigurationRequired = ["vcpu_count", "mem_size_mib"] as const;

/** `BootSource`. `boot_args` replaces the default cmdline (NOTES.md §7). */
export interface BootSource {
  kernel_image_path: string;
  boot_args?: string;
  initrd_path?: string;
}
export const BootSourceKeys = ["kernel_image_path", "boot_args", "initrd_path"] as const;
export const BootSourceRequired = ["kernel_image_path"] as const;

/** `Drive` (virtio-blk with `path_on_host`, or vhost-user with `socket`). */
export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  partuuid?: string;
  cache_type?: "Unsafe" | "Writeback";
  is_read_only?: boolean;
  path_on_host?: string;
  rate_limiter?: RateLimiter;
  io_engine?: "Sync" | "Async";
  socket?: string;
}
export const DriveKeys = [
  "drive_id",
  "is_root_device",
  "partuuid",
  "cache_type",
  "is_read_only",
  "path_on_host",
  "rate_limiter",
  "io_engine",
  "socket",
] as const;
export const DriveRequired = ["drive_id", "is_root_device"] as const;

/** `PartialDrive` (`PATCH /drives/{id}`, post-boot). */
export interface PartialDrive {
  drive_id: string;
  path_on_host?: string;
  rate_limiter?: RateLimiter;
}
export const PartialDriveKeys = ["drive_id", "path_on_host", "rate_limiter"] as const;
export const PartialDriveRequired = ["drive_id"] as const;

/** `NetworkInterface` (a TAP device in Firecracker's network namespace). */
export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}
export const NetworkInterfaceKeys = [
  "iface_id",
  "host_dev_name",
  "guest_mac",
  "rx_rate_limiter",
  "tx_rate_limiter",
] as const;
export const NetworkInterfaceRequired = ["iface_id", "host_dev_name"] as const;

/** `PartialNetworkInterface` (`PATCH /network-interfaces/{id}`, post-boot). */
export interface PartialNetworkInterface {
  iface_id: string;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}
export const PartialNetworkInterfaceKeys = [
  "iface_id",
  "rx_rate_limiter",
  "tx_rate_limiter",
] as const;
export const PartialNetworkInterfaceRequired = ["iface_id"] as const;

/** `Vsock`. Firecracker binds `uds_path` at PUT time; it must not exist. */
export interface Vsock {
  guest_cid: number;
  uds_path: string;
  /** @deprecated ignored by Firecracker; present in 1.14 only for compatibility. */
  vsock_id?: string;
}
export const VsockKeys = ["guest_cid", "uds_path", "vsock_id"] as const;
export const VsockRequired = ["guest_cid", "uds_path"] as const;

/** `MmdsConfig`. */
export interface MmdsConfig {
  network_interfaces: string[];
  version?: "V1" | "V2";
  ipv4_address?: string;
  imds_compat?: boolean;
}
export const MmdsConfigKeys = [
  "network_interfaces",
  "version",
  "ipv4_address",
  "imds_compat",
] as const;
export const MmdsConfigRequired = ["network_interfaces"] as const;

/** `MmdsContentsObject`: any JSON object. */
export type MmdsContents = Record<string, unknown>;

/** `Logger`. */
export interface Logger {
  log_path?: string;
  level?: "Error" | "Warning" | "Info" | "Debug" | "Trace" | "Off";
  show_level?: boolean;
  show_log_origin?: boolean;
  module?: string;
}
export const LoggerKeys = ["log_path", "level", "show_level", "show_log_origin", "module"] as const;
export const LoggerRequired = [] as const;

/** `Metrics`. Once per process; not kept in snapshots. */
export interface Metrics {
  metrics_path: string;
}
export const MetricsKeys = ["metrics_path"] as const;
export const MetricsRequired = ["metrics_path"] as const;

/** `InstanceActionInfo` (`PUT /actions`). */
export interface InstanceActionInfo {
  action_type: "InstanceStart" | "FlushMetrics" | "SendCtrlAltDel";
}
export const InstanceActionInfoKeys = ["action_type"] as const;
export const InstanceActionInfoRequired = ["action_type"] as const;

/** `Vm` (`PATCH /vm`). Idempotent. */
export interface Vm {
  state: "Paused" | "Resumed";
}
export const VmKeys = ["state"] as const;
export const VmRequired = ["state"] as const;

/** `SnapshotCreateParams`. The VM must be paused. */
export interface SnapshotCreateParams {
  snapshot_path: string;
  mem_file_path: string;
  snapshot_type?: "Full" | "Diff";
}
export const SnapshotCreateParamsKeys = [
  "snapshot_path",
  "mem_file_path",
  "snapshot_type",
] as const;
export const SnapshotCreateParamsRequired = ["snapshot_path", "mem_file_path"] as const;

/** `MemoryBackend`. */
export interface MemoryBackend {
  backend_type: "File" | "Uffd";
  backend_path: string;
}
export const MemoryBackendKeys = ["backend_type", "backend_path"] as const;
export const MemoryBackendRequired = ["backend_type", "backend_path"] as const;

/** `NetworkOverride`: swap the TAP behind `iface_id` at load time. */
export interface NetworkOverride {
  iface_id: string;
  host_dev_name: string;
}
export const NetworkOverrideKeys = ["iface_id", "host_dev_name"] as const;
export const NetworkOverrideRequired = ["iface_id", "host_dev_name"] as const;

/**
 * `SnapshotLoadParams`. Exactly one of `mem_backend` / (deprecated) `mem_file_path`.
 * Only on a fresh process before any boot-specific resource is configured.
 */
export interface SnapshotLoadParams {
  snapshot_path: string;
  mem_backend?: MemoryBackend;
  /** @deprecated use `mem_backend`. */
  mem_file_path?: string;
  track_dirty_pages?: boolean;
  /** @deprecated use `track_dirty_pages`. */
  enable_diff_snapshots?: boolean;
  resume_vm?: boolean;
  network_overrides?: NetworkOverride[];
}
export const SnapshotLoadParamsKeys = [
  "snapshot_path",
  "mem_backend",
  "mem_file_path",
  "track_dirty_pages",
  "enable_diff_snapshots",
  "resume_vm",
  "network_overrides",
] as const;
export const SnapshotLoadParamsRequired = ["snapshot_path"] as const;

/** `Balloon`. */
export interface Balloon {
  amount_mib: number;
  deflate_on_oom: boolean;
  stats_polling_interval_s?: number;
  free_page_hinting?: boolean;
  free_page_reporting?: boolean;
}
export const BalloonKeys = [
  "amount_mib",
  "deflate_on_oom",
  "stats_polling_interval_s",
  "free_page_hinting",
  "free_page_reporting",
] as const;
export const BalloonRequired = ["amount_mib", "deflate_on_oom"] as const;

/** `BalloonUpdate` (`PATCH /balloon`, post-boot). */
export interface BalloonUpdate {
  amount_mib: number;
}
export const BalloonUpdateKeys = ["amount_mib"] as const;
export const BalloonUpdateRequired = ["amount_mib"] as const;

/** `BalloonStats` (`GET /balloon/statistics`); byte counters are bytes, the rest counts/pages. */
export interface BalloonStats {
  target_pages: number;
  actual_pages: number;
  target_mib: number;
  actual_mib: number;
  swap_in?: number;
  swap_out?: number;
  major_faults?: number;
  minor_faults?: number;
  free_memory?: number;
  total_memory?: number;
  available_memory?: number;
  disk_caches?: number;
  hugetlb_allocations?: number;
  hugetlb_failures?: number;
  oom_kill?: number;
  alloc_stall?: number;
  async_scan?: number;
  direct_scan?: number;
  async_reclaim?: number;
  direct_reclaim?: number;
}
export const BalloonStatsKeys = [
  "target_pages",
  "actual_pages",
  "target_mib",
  "actual_mib",
  "swap_in",
  "swap_out",
  "major_faults",
  "minor_faults",
  "free_memory",
  "total_memory",
  "available_memory",
  "disk_caches",
  "hugetlb_allocations",
  "hugetlb_failures",
  "oom_kill",
  "alloc_stall",
  "async_scan",
  "direct_scan",
  "async_reclaim",
  "direct_reclaim",
] as const;
export const BalloonStatsRequired = [
  "target_pages",
  "actual_pages",
  "target_mib",
  "actual_mib",
] as const;

/** `EntropyDevice` (virtio-rng). */
export interface EntropyDevice {
  rate_limiter?: RateLimiter;
}
export const EntropyDeviceKeys = ["rate_limiter"] as const;
export const EntropyDeviceRequired = [] as const;

/** `FullVmConfiguration` (`GET /vm/config`); keys are kebab-case like the config file. */
export interface FullVmConfiguration {
  balloon?: Balloon;
  drives?: Drive[];
  "boot-source"?: BootSource;
  "cpu-config"?: Record<string, unknown>;
  logger?: Logger;
  "machine-config"?: MachineConfiguration;
  metrics?: Metrics;
  "memory-hotplug"?: Record<string, unknown>;
  "mmds-config"?: MmdsConfig;
  "network-interfaces"?: NetworkInterface[];
  pmem?: Record<string, unknown>[];
  vsock?: Vsock;
  entropy?: EntropyDevice;
}
export const FullVmConfigurationKeys = [
  "balloon",
  "drives",
  "boot-source",
  "cpu-config",
  "logger",
  "machine-config",
  "metrics",
  "memory-hotplug",
  "mmds-config",
  "network-interfaces",
  "pmem",
  "vsock",
  "entropy",
] as const;
export const FullVmConfigurationRequired = [] as const;

/** `Error` body (`fault_message`); HTTP-parser errors use `{ error }` instead (NOTES.md §0). */
export interface ApiErrorBody {
  fault_message?: string;
  error?: string;
}

/**
 * Every typed definition: spec name → declared keys and required keys.
 * @private used by the spec test.
 */
export const typedDefinitions: Record<
  string,
  { keys: readonly string[]; required: readonly string[] }
> = {
  TokenBucket: { keys: TokenBucketKeys, required: TokenBucketRequired },
  RateLimiter: { keys: RateLimiterKeys, required: RateLimiterRequired },
  InstanceInfo: { keys: InstanceInfoKeys, required: InstanceInfoRequired },
  FirecrackerVersion: { keys: FirecrackerVersionKeys, required: FirecrackerVersionRequired },
  MachineConfiguration: {
    keys: MachineConfigurationKeys,
    required: MachineConfigurationRequired,
  },
  BootSource: { keys: BootSourceKeys, required: BootSourceRequired },
  Drive: { keys: DriveKeys, required: DriveRequired },
  PartialDrive: { keys: PartialDriveKeys, required: PartialDriveRequired },
  NetworkInterface: { keys: NetworkInterfaceKeys, required: NetworkInterfaceRequired },
  PartialNetworkInterface: {
    keys: PartialNetworkInterfaceKeys,
    required: PartialNetworkInterfaceRequired,
  },
  Vsock: { keys: VsockKeys, required: VsockRequired },
  MmdsConfig: { keys: MmdsConfigKeys, required: MmdsConfigRequired },
  Logger: { keys: LoggerKeys, required: LoggerRequired },
  Metrics: { keys: MetricsKeys, required: MetricsRequired },
  InstanceActionInfo: { keys: InstanceActionInfoKeys, required: InstanceActionInfoRequired },
  Vm: { keys: VmKeys, required: VmRequired },
  SnapshotCreateParams: {
    keys: SnapshotCreateParamsKeys,
    required: SnapshotCreateParamsRequired,
  },
  MemoryBackend: { keys: MemoryBackendKeys, required: MemoryBackendRequired },
  NetworkOverride: { keys: NetworkOverrideKeys, required: NetworkOverrideRequired },
  SnapshotLoadParams: { keys: SnapshotLoadParamsKeys, required: SnapshotLoadParamsRequired },
  Balloon: { keys: BalloonKeys, required: BalloonRequired },
  BalloonUpdate: { keys: BalloonUpdateKeys, required: BalloonUpdateRequired },
  BalloonStats: { keys: BalloonStatsKeys, required: BalloonStatsRequired },
  EntropyDevice: { keys: EntropyDeviceKeys, required: EntropyDeviceRequired },
  FullVmConfiguration: { keys: FullVmConfigurationKeys, required: FullVmConfigurationRequired },
};

/** Admission limits of the SandboxManager (config `[limits]`). 0 = unlimited for the totals. */
export interface SandboxLimits {
  readonly maxSandboxes: number;
  readonly maxVcpusPerSandbox: number;
  readonly maxMemoryMibPerSandbox: number;
  readonly maxTotalVcpus: number;
  readonly maxTotalMemoryMib: number;
  readonly maxConcurrentCreates: number;
  /** Apparent bytes of sandbox disks and snapshot files under data_dir; 0 = unlimited. */
  readonly maxTotalDiskBytes: number;
  /** Snapshots (Checkpoints) one sandbox may have at once; 0 = unlimited. */
  readonly maxSnapshotsPerSandbox: number;
}

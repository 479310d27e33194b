/** Admission limits of the SandboxManager (config `[limits]`). 0 = unlimited for the totals. */
export interface SandboxLimits {
  readonly maxSandboxes: number;
  readonly maxVcpusPerSandbox: number;
  readonly maxMemoryMibPerSandbox: number;
  readonly maxTotalVcpus: number;
  readonly maxTotalMemoryMib: number;
  readonly maxConcurrentCreates: number;
}

import type { CreateOutcome, NetworkPoolLevels, SandboxUsage } from "@vmm/core";

/** Pool levels at one moment. */
export interface PoolLevels {
  readonly network: NetworkPoolLevels;
  /** Rootfs clones made ahead of time, ready to be handed out (storage.spare_clones). */
  readonly spareClones: number;
  /** Golden snapshots on disk ([golden]). */
  readonly goldenSnapshots: number;
}

/**
 * What the metrics read from the sandbox backend. Every read is synchronous
 * and does no I/O: a scrape calls them once each.
 */
export interface MetricsSource {
  /** Every user sandbox now (removed ones are gone: their series go with them). */
  sandboxes(): readonly SandboxUsage[];
  pools(): PoolLevels;
  /** Calls `observer` when a Create or Restore ends, until the returned function is called. */
  observeCreates(observer: (o: CreateOutcome) => void): () => void;
}

import { constants, openSync, writeSync } from "node:fs";

/**
 * Firecracker-style metrics: newline-delimited JSON, first key `utc_timestamp_ms`,
 * counters are deltas since the previous flush. fc-sim emits a subset of the groups.
 */
export class Metrics {
  private fd: number | undefined;
  private counters: Record<string, Record<string, number>> = {};

  /** True once a metrics destination was set (`--metrics-path` or `PUT /metrics`). */
  get initialized(): boolean {
    return this.fd !== undefined;
  }

  /** Opens/creates the destination (relative to cwd). Throws the open error. */
  init(path: string): void {
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
  }

  /** Adds 1 to counter `group.name`. */
  inc(group: string, name: string): void {
    const g = this.counters[group] ?? {};
    this.counters[group] = g;
    g[name] = (g[name] ?? 0) + 1;
  }

  /** Writes one line and resets the counters. No-op when not initialized. */
  flush(): void {
    if (this.fd === undefined) return;
    const groups = [
      "api_server",
      "block",
      "get_api_requests",
      "put_api_requests",
      "patch_api_requests",
      "vmm",
      "vsock",
      "net",
      "mmds",
      "signals",
      "logger",
    ];
    const line: Record<string, unknown> = { utc_timestamp_ms: Date.now() };
    for (const g of groups) line[g] = this.counters[g] ?? {};
    this.counters = {};
    try {
      writeSync(this.fd, `${JSON.stringify(line)}\n`);
    } catch {
      this.inc("logger", "missed_metrics_count");
    }
  }
}

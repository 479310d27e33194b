import type { SandboxUsage } from "@vmm/core";
import type { ProcessStats } from "./process-stats.js";

/** One per-sandbox metric family: name, type, help and the value it takes from a sandbox. */
interface SandboxFamily {
  readonly name: string;
  readonly type: "gauge" | "counter";
  readonly help: string;
  /** The value for one sandbox, or undefined to write no series for it. */
  value(sandbox: SandboxUsage, stats: ProcessStats | undefined): number | undefined;
}

/** The per-sandbox families, in the order a scrape writes them (docs/operations.md lists each). */
export const SANDBOX_FAMILIES: readonly SandboxFamily[] = [
  {
    name: "vmm_sandbox_memory_bytes",
    type: "gauge",
    help: "Resident memory (RSS) of each sandbox's Firecracker process, bytes; absent while no VM runs (paused, stopped).",
    value: (_, st) => st?.rssBytes,
  },
  {
    name: "vmm_sandbox_cpu_seconds_total",
    type: "counter",
    help: "User + system CPU time of each sandbox's Firecracker process (vCPUs and device emulation), seconds since that process started.",
    value: (_, st) => st?.cpuSeconds,
  },
  {
    name: "vmm_sandbox_disk_bytes",
    type: "gauge",
    help: "Disk each sandbox takes under data_dir (as SandboxInfo.disk_bytes: writable rootfs plus a paused sandbox's memory and state; apparent sizes), bytes.",
    value: (s) => s.diskBytes,
  },
];

/**
 * The per-sandbox series of one scrape in Prometheus text format (0.0.4),
 * written directly rather than through prom-client's label maps: with
 * hundreds of sandboxes, resetting and refilling three labelled metrics on
 * every scrape (hashing each label set, then formatting it back) was most of
 * a scrape's CPU. A removed sandbox is simply not written.
 */
export function renderSandboxSeries(
  sandboxes: readonly SandboxUsage[],
  stats: ReadonlyMap<string, ProcessStats>,
): string {
  let out = "";
  for (const f of SANDBOX_FAMILIES) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of sandboxes) {
      const v = f.value(s, stats.get(s.id));
      if (v !== undefined) out += `${f.name}{sandbox_id="${escapeLabel(s.id)}"} ${v}\n`;
    }
  }
  return out;
}

/** HELP text escaping of the text format: backslash and line feed. */
function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Label value escaping of the text format: backslash, double quote and line feed. */
function escapeLabel(s: string): string {
  return /[\\"\n]/.test(s)
    ? s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
    : s;
}

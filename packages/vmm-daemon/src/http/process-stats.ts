import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** What one process uses, from a single read of /proc/<pid>/stat. */
export interface ProcessStats {
  /** Resident set size (anonymous + file + shared pages), bytes: the same count as VmRSS. */
  readonly rssBytes: number;
  /** User + system CPU time since the process started, seconds. */
  readonly cpuSeconds: number;
}

let units: { ticksPerSecond: number; pageBytes: number } | undefined;

/** Clock ticks per second and page size of this host (asked once; Node has no sysconf). */
function hostUnits(): { ticksPerSecond: number; pageBytes: number } {
  if (units) return units;
  const ask = (name: string, fallback: number) => {
    try {
      const v = Number(execFileSync("getconf", [name], { encoding: "utf8", timeout: 2000 }).trim());
      return Number.isInteger(v) && v > 0 ? v : fallback;
    } catch {
      return fallback;
    }
  };
  units = { ticksPerSecond: ask("CLK_TCK", 100), pageBytes: ask("PAGESIZE", 4096) };
  return units;
}

/**
 * RSS and CPU time of `pid`, or undefined when it is gone (or not readable).
 * One file read: /proc/<pid>/stat has utime and stime (fields 14, 15, clock
 * ticks) and rss (field 24, pages; the kernel's get_mm_rss, as VmRSS in
 * /proc/<pid>/status). proc(5).
 */
export function readProcessStats(pid: number): ProcessStats | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rssPages)) {
    return undefined;
  }
  const u = hostUnits();
  return { rssBytes: rssPages * u.pageBytes, cpuSeconds: (utime + stime) / u.ticksPerSecond };
}

import type { PhaseStats } from "./stats.js";

/** Version tag of the JSON document every command prints. */
export const SCHEMA = "vmm-bench/1";

/** The machine the numbers were measured on. */
export interface HostInfo {
  readonly cpus: number;
  readonly memGiB: number;
  readonly kernel: string;
  /** 1/5/15-minute load averages at the start and the end of the run (other work on the host). */
  readonly loadavg?: { readonly start: readonly number[]; readonly end: readonly number[] };
}

/** The Firecracker binary (or fc-sim) the numbers were measured with. */
export interface BackendInfo {
  /** Absolute path, or null when an external daemon was used without --firecracker. */
  readonly firecracker: string | null;
  readonly simulated: boolean;
  /** First line of `firecracker --version`, e.g. "Firecracker v1.14.2"; "unknown" if it failed. */
  readonly version: string;
}

/** daemon/raw (or grpc/direct) ratio of one phase. */
export interface PhaseRatio {
  readonly p50: number | null;
  readonly mean: number | null;
}

/** The JSON document printed on stdout (docs/benchmarks.md). */
export interface BenchReport {
  readonly schema: typeof SCHEMA;
  readonly command: string;
  /** ISO 8601, when the run started. */
  readonly date: string;
  readonly host: HostInfo;
  readonly backend: BackendInfo;
  readonly params: Readonly<Record<string, unknown>>;
  /** Phase name → summary (ms). Names are `<phase>_ms`, prefixed `daemon.`/`raw.`/`grpc.`/`direct.` in paired commands. */
  readonly phases: Readonly<Record<string, PhaseStats>>;
  readonly ratios?: Readonly<Record<string, PhaseRatio | number>>;
  readonly notes: readonly string[];
}

const STAT_KEYS = ["n", "min", "p50", "p95", "p99", "max", "mean"] as const;

/** Returns what is wrong with `doc` as a vmm-bench/1 report; empty when valid. */
export function validateReport(doc: unknown): string[] {
  const errs: string[] = [];
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return ["not an object"];
  const d = doc as Record<string, unknown>;
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (d.schema !== SCHEMA) errs.push(`schema must be "${SCHEMA}"`);
  if (typeof d.command !== "string" || d.command === "") errs.push("command must be a string");
  if (typeof d.date !== "string" || Number.isNaN(Date.parse(d.date)))
    errs.push("date must be ISO 8601");
  if (!isObj(d.host)) errs.push("host must be an object");
  else {
    if (!Number.isInteger(d.host.cpus) || (d.host.cpus as number) < 1)
      errs.push("host.cpus must be a positive integer");
    if (typeof d.host.memGiB !== "number" || d.host.memGiB <= 0)
      errs.push("host.memGiB must be positive");
    if (typeof d.host.kernel !== "string") errs.push("host.kernel must be a string");
  }
  if (!isObj(d.backend)) errs.push("backend must be an object");
  else {
    if (d.backend.firecracker !== null && typeof d.backend.firecracker !== "string") {
      errs.push("backend.firecracker must be a string or null");
    }
    if (typeof d.backend.simulated !== "boolean") errs.push("backend.simulated must be a boolean");
    if (typeof d.backend.version !== "string") errs.push("backend.version must be a string");
  }
  if (!isObj(d.params)) errs.push("params must be an object");
  if (!isObj(d.phases)) errs.push("phases must be an object");
  else {
    for (const [name, st] of Object.entries(d.phases)) {
      if (!isObj(st)) {
        errs.push(`phases.${name} must be an object`);
        continue;
      }
      for (const k of STAT_KEYS) {
        if (typeof st[k] !== "number" || !Number.isFinite(st[k]))
          errs.push(`phases.${name}.${k} must be a finite number`);
      }
      if (!Number.isInteger(st.n) || (st.n as number) < 1)
        errs.push(`phases.${name}.n must be a positive integer`);
      const [min, p50, p95, p99, max] = [st.min, st.p50, st.p95, st.p99, st.max] as number[];
      if (!(min! <= p50! && p50! <= p95! && p95! <= p99! && p99! <= max!)) {
        errs.push(`phases.${name}: min <= p50 <= p95 <= p99 <= max does not hold`);
      }
      if (!((st.mean as number) >= min! && (st.mean as number) <= max!))
        errs.push(`phases.${name}.mean is outside [min, max]`);
    }
  }
  if (d.ratios !== undefined && !isObj(d.ratios))
    errs.push("ratios must be an object when present");
  if (!Array.isArray(d.notes) || !d.notes.every((n) => typeof n === "string"))
    errs.push("notes must be an array of strings");
  return errs;
}

/** The phases as an aligned text table (for stderr). */
export function formatTable(phases: Readonly<Record<string, PhaseStats>>): string {
  const header = ["phase", ...STAT_KEYS];
  const rows = Object.entries(phases).map(([name, s]) => [
    name,
    String(s.n),
    ...STAT_KEYS.slice(1).map((k) => s[k].toFixed(2)),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "),
    )
    .join("\n");
}

/** daemon/raw ratios as text lines. */
export function formatRatios(ratios: Readonly<Record<string, PhaseRatio | number>>): string {
  return Object.entries(ratios)
    .map(([k, v]) =>
      typeof v === "number"
        ? `${k}: ${v}`
        : `${k}: p50 ${v.p50 ?? "n/a"}x  mean ${v.mean ?? "n/a"}x`,
    )
    .join("\n");
}

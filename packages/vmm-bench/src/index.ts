// vmm-bench as a library: the statistics and the report schema (for specs and tools reading the JSON).
export type { BackendInfo, BenchReport, HostInfo, PhaseRatio } from "./report.js";
export { formatTable, SCHEMA, validateReport } from "./report.js";
export type { PhaseStats } from "./stats.js";
export { percentile, ratio, Samples, summarize } from "./stats.js";

import { constants, openSync, writeSync } from "node:fs";

/** Firecracker log levels, most to least severe. */
export const logLevels = ["Off", "Error", "Warn", "Info", "Debug", "Trace"] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * Parses a level the way v1.14.2 does (case-insensitive, `Warning` = `Warn`).
 * @returns undefined for an unknown level.
 */
export function parseLogLevel(s: string): LogLevel | undefined {
  const l = s.toLowerCase();
  if (l === "warning") return "Warn";
  return logLevels.find((x) => x.toLowerCase() === l);
}

/**
 * Firecracker's logger: `<local time ns> [<id>:<thread>[:<LEVEL>][:<file>:<line>]] <msg>`,
 * to stdout or to a file/FIFO opened O_RDWR|O_CREAT|O_NONBLOCK without truncation
 * (like v1.14, a reused regular file is overwritten from offset 0).
 */
export class FcLogger {
  instanceId = "anonymous-instance";
  level: LogLevel = "Info";
  showLevel = false;
  showOrigin = false;
  module: string | undefined;
  private fd = 1;

  /** Redirects output to `path` (relative to the cwd). Throws the open error. */
  setPath(path: string): void {
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
  }

  log(level: Exclude<LogLevel, "Off">, thread: string, msg: string, origin = "src/fc-sim"): void {
    if (logLevels.indexOf(level) > logLevels.indexOf(this.level)) return;
    if (this.module !== undefined && !origin.startsWith(this.module)) return;
    let tag = `${this.instanceId}:${thread}`;
    if (this.showLevel) tag += `:${level.toUpperCase()}`;
    if (this.showOrigin) tag += `:${origin}`;
    try {
      writeSync(this.fd, `${timestamp()} [${tag}] ${msg}\n`);
    } catch {
      // A full FIFO drops lines (Firecracker bumps logger.missed_log_count).
    }
  }
}

function timestamp(): string {
  const now = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  const ns = process.hrtime.bigint() % 1_000_000n;
  return (
    `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}T` +
    `${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}.` +
    `${p(now.getMilliseconds(), 3)}${String(ns).padStart(6, "0")}`
  );
}

/** The banner fc-sim logs first, so nobody mistakes it for a real microVM. */
export const simulatorBanner = [
  "################################################################################",
  "# fc-sim: this is a SIMULATOR of Firecracker v1.14.2, not Firecracker.        #",
  "# There is NO microVM and NO ISOLATION: the guest runs as a host process.     #",
  "# Use it for tests and development only, never for untrusted code.            #",
  "################################################################################",
];

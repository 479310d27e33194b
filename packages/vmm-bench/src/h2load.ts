import { execFile } from "node:child_process";
import { promisify } from "node:util";

/** One "min max mean sd" row of h2load's timing table, ms. */
export interface H2loadTiming {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly sd: number;
}

/** What an h2load run printed, numbers only. */
export interface H2loadResult {
  /** Wall time of the whole run, ms. */
  readonly durationMs: number;
  /** Completed requests per second over the whole run ("finished in …, N req/s"). */
  readonly reqPerSec: number;
  readonly requests: {
    readonly total: number;
    readonly started: number;
    readonly done: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly errored: number;
    readonly timeout: number;
  };
  /** Responses by status class. */
  readonly status: {
    readonly "2xx": number;
    readonly "3xx": number;
    readonly "4xx": number;
    readonly "5xx": number;
  };
  /** "time for request": first byte sent → last byte received, per request. */
  readonly requestTimeMs: H2loadTiming;
}

/** h2load printed something this parser does not understand (its format changed, or it failed). */
export class H2loadOutputError extends Error {
  constructor(what: string, output: string) {
    super(`h2load output has no ${what}:\n${output.slice(-2000)}`);
    this.name = new.target.name;
  }
}

/** Per unit: [multiplier, divisor] to ms (a divisor keeps 573us exactly 0.573). */
const UNIT_MS: Record<string, readonly [number, number]> = {
  us: [1, 1000],
  ms: [1, 1],
  s: [1000, 1],
};

/** "339us", "5.60ms", "1.2s" → ms. */
function durationMs(text: string, output: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) throw new H2loadOutputError(`duration in ${JSON.stringify(text)}`, output);
  const [mul, div] = UNIT_MS[m[2]!]!;
  return (Number(m[1]) * mul) / div;
}

/**
 * Parses the summary h2load (nghttp2 1.4x–1.6x) prints at the end of a run:
 * the "finished in" line, request and status counts, and the
 * "time for request" row.
 */
export function parseH2loadOutput(output: string): H2loadResult {
  const finished = /^finished in ([\d.]+(?:us|ms|s)), ([\d.]+) req\/s/m.exec(output);
  if (!finished) throw new H2loadOutputError('"finished in" line', output);
  const req =
    /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(
      output,
    );
  if (!req) throw new H2loadOutputError('"requests:" line', output);
  const st = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(output);
  if (!st) throw new H2loadOutputError('"status codes:" line', output);
  const t = /^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(output);
  if (!t) throw new H2loadOutputError('"time for request:" row', output);
  const n = (s: string | undefined) => Number(s);
  return {
    durationMs: durationMs(finished[1]!, output),
    reqPerSec: n(finished[2]),
    requests: {
      total: n(req[1]),
      started: n(req[2]),
      done: n(req[3]),
      succeeded: n(req[4]),
      failed: n(req[5]),
      errored: n(req[6]),
      timeout: n(req[7]),
    },
    status: { "2xx": n(st[1]), "3xx": n(st[2]), "4xx": n(st[3]), "5xx": n(st[4]) },
    requestTimeMs: {
      min: durationMs(t[1]!, output),
      max: durationMs(t[2]!, output),
      mean: durationMs(t[3]!, output),
      sd: durationMs(t[4]!, output),
    },
  };
}

/** Options of one h2load run: `-n` requests over `-c` connections with `-m` streams each. */
export interface H2loadOptions {
  readonly url: string;
  /** Request body file (h2load -d; makes the requests POSTs). */
  readonly bodyFile: string;
  readonly headers: readonly string[];
  readonly requests: number;
  readonly clients: number;
  readonly maxStreams: number;
  /** h2load -t; default 1 (the daemon needs the other core). */
  readonly threads?: number;
  readonly signal?: AbortSignal;
}

/** The h2load command line of `o` (arguments after the program name). */
export function h2loadArgs(o: H2loadOptions): string[] {
  return [
    "-n",
    String(o.requests),
    "-c",
    String(o.clients),
    "-m",
    String(o.maxStreams),
    "-t",
    String(o.threads ?? 1),
    "-d",
    o.bodyFile,
    ...o.headers.flatMap((h) => ["-H", h]),
    o.url,
  ];
}

/** Runs h2load (from Debian's nghttp2-client) and parses its summary. */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)("h2load", h2loadArgs(o), {
      maxBuffer: 16 << 20,
      ...(o.signal && { signal: o.signal }),
    }));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error("h2load not found: apt-get install nghttp2-client", { cause: err });
    }
    const message = String((err as Error).message).replace(/(Bearer )\S+/g, "$1<token>");
    throw new Error(`h2load failed: ${message}`);
  }
  return parseH2loadOutput(stdout);
}

import { parseArgs } from "node:util";
import { UsageError } from "./errors.js";

/**
 * One command-line flag. The table key is the long name (`--boot-args`); the
 * rest documents it for `--help` and the completion scripts, so help, parsing
 * and completion come from the same table.
 */
export interface FlagSpec {
  /** "string" takes a value, "boolean" does not. */
  readonly type: "string" | "boolean";
  /** One-letter alias, e.g. "t" for `-t`. */
  readonly short?: string;
  /** Repeatable: every occurrence is kept, in order. */
  readonly multiple?: boolean;
  /** Placeholder shown in help for the value, e.g. "N" or "K=V". */
  readonly value?: string;
  /** One line of help. */
  readonly description: string;
  /** Values offered by shell completion (and checked by the command). */
  readonly choices?: readonly string[];
}

/** A command's flags, keyed by long name. */
export type FlagTable = Readonly<Record<string, FlagSpec>>;

/** The parsed value of each flag in `T`: strings, booleans, or arrays of them when repeatable. */
export type FlagValues<T extends FlagTable> = {
  [K in keyof T]: T[K]["type"] extends "boolean"
    ? T[K]["multiple"] extends true
      ? boolean[]
      : boolean
    : T[K]["multiple"] extends true
      ? string[]
      : string | undefined;
};

/** The result of parsing one command's arguments. */
export interface ParsedArgs<T extends FlagTable> {
  /** Flag values; booleans default to false and repeatable flags to []. */
  readonly values: FlagValues<T>;
  /** Positional arguments before `--`. */
  readonly positionals: readonly string[];
  /** Arguments after `--`, or undefined when there was no `--`. */
  readonly rest: readonly string[] | undefined;
}

/**
 * Parses `argv` against `table` with Node's `util.parseArgs` in strict mode:
 * unknown flags, missing values and values given to boolean flags are usage
 * errors. Everything after the first `--` is returned untouched in `rest`.
 */
export function parseFlags<T extends FlagTable>(table: T, argv: readonly string[]): ParsedArgs<T> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, spec] of Object.entries(table)) {
    options[name] = { type: spec.type };
    if (spec.short !== undefined) options[name].short = spec.short;
    if (spec.multiple) options[name].multiple = true;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (err) {
    throw new UsageError(cleanParseArgsMessage(err));
  }
  const terminator = parsed.tokens?.find((t) => t.kind === "option-terminator");
  const positionals: string[] = [];
  const rest: string[] = [];
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "positional") continue;
    if (terminator !== undefined && token.index > terminator.index) rest.push(token.value);
    else positionals.push(token.value);
  }
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const v = (parsed.values as Record<string, unknown>)[name];
    if (spec.multiple) values[name] = v ?? [];
    else if (spec.type === "boolean") values[name] = v === true;
    else values[name] = v;
  }
  return {
    values: values as FlagValues<T>,
    positionals,
    rest: terminator === undefined ? undefined : rest,
  };
}

/** parseArgs messages mention its own API ("To specify a positional argument..."): keep the first sentence. */
function cleanParseArgsMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const first = msg.split(/\.\s/)[0] ?? msg;
  const text = first.replace(/\.$/, "").replace(/'/g, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** Renders a flag table as aligned help lines. */
export function formatFlagHelp(table: FlagTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    const short = spec.short === undefined ? "    " : `-${spec.short}, `;
    const value = spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : "";
    const choices = spec.choices ? ` (${spec.choices.join("|")})` : "";
    const repeat = spec.multiple ? " (repeatable)" : "";
    return [`  ${short}--${name}${value}`, `${spec.description}${choices}${repeat}`] as const;
  });
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `${left.padEnd(width)}   ${right}`).join("\n");
}

/**
 * Parses repeated `K=V` flags into a map. The value may contain `=`; an empty
 * key or a missing `=` is a usage error naming the flag.
 */
export function parseKeyValues(flag: string, items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`--${flag} wants KEY=VALUE, got "${item}"`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses a duration into whole seconds: a plain number of seconds ("90") or
 * Go-style units ("90s", "5m", "1h30m", "2d"). Negative, fractional-second
 * results and unknown units are usage errors naming the flag.
 */
export function parseDurationSeconds(flag: string, text: string): number {
  const bad = () =>
    new UsageError(`--${flag} wants a duration like 30, 90s, 5m or 1h30m, got "${text}"`);
  if (/^\d+$/.test(text)) return checkUint32(flag, Number(text));
  if (!/^(\d+(\.\d+)?[smhd])+$/.test(text)) throw bad();
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) {
    total += Number(m[1]) * (durationUnits[m[2] ?? "s"] ?? 1);
  }
  if (!Number.isInteger(total)) throw bad();
  return checkUint32(flag, total);
}

/** Parses a non-negative integer flag. */
export function parseCount(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--${flag} wants a whole number, got "${text}"`);
  return checkUint32(flag, Number(text));
}

const mibFactors: Record<string, number> = {
  m: 1,
  mi: 1,
  mib: 1,
  mb: 1,
  g: 1024,
  gi: 1024,
  gib: 1024,
  gb: 1024,
};

/** Parses a memory size into MiB: "512" (MiB), "512M", "512MiB", "2G", "2GiB". */
export function parseMemoryMib(flag: string, text: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text);
  const factor = m ? (m[2] === "" ? 1 : mibFactors[(m[2] ?? "").toLowerCase()]) : undefined;
  if (!m || factor === undefined) {
    throw new UsageError(`--${flag} wants a size in MiB like 512, 512M or 2G, got "${text}"`);
  }
  return checkUint32(flag, Number(m[1]) * factor);
}

function checkUint32(flag: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) {
    throw new UsageError(`--${flag} is out of range`);
  }
  return n;
}

import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { stringify as yamlStringify } from "yaml";
import { UsageError } from "./errors.js";

/** Output formats of `-o`. "table" is the human default. */
export type OutputFormat = "table" | "wide" | "json" | "yaml";

/**
 * Checks `-o` against the formats a command supports.
 * @param value the flag's value; undefined means "table"
 */
export function parseOutputFormat<const A extends readonly OutputFormat[]>(
  value: string | undefined,
  allowed: A,
): A[number] {
  const v = value ?? "table";
  if (!(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`-o wants one of ${allowed.join(", ")}, got "${v}"`);
  }
  return v as A[number];
}

/**
 * Renders a protobuf message as one JSON or YAML document, from its canonical
 * JSON form (`toJson`, so int64 are strings and field names lowerCamelCase),
 * with fields at their default value included so scripts see every key.
 */
export function renderMessage<Desc extends DescMessage>(
  format: "json" | "yaml",
  schema: Desc,
  msg: MessageShape<Desc>,
): string {
  const json = toJson(schema, msg, { alwaysEmitImplicit: true });
  return format === "json" ? `${JSON.stringify(json, null, 2)}\n` : yamlStringify(json);
}

/** The same as renderMessage for one line of a stream (NDJSON for json). */
export function renderStreamMessage<Desc extends DescMessage>(
  format: "json" | "yaml",
  schema: Desc,
  msg: MessageShape<Desc>,
): string {
  const json = toJson(schema, msg, { alwaysEmitImplicit: true });
  return format === "json" ? `${JSON.stringify(json)}\n` : `---\n${yamlStringify(json)}`;
}

/** Renders a plain object (not a protobuf message) as JSON or YAML. */
export function renderPlain(format: "json" | "yaml", value: unknown): string {
  return format === "json" ? `${JSON.stringify(value, null, 2)}\n` : yamlStringify(value);
}

/**
 * Aligns rows under headers, columns separated by three spaces, the last
 * column not padded. Empty cells print as "-" so columns stay readable.
 */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === "" ? "-" : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return `${cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("   ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** Labels as `k=v,k2=v2`, sorted by key. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

/**
 * A short age like `docker ps`: "12s", "5m", "3h", "2d" (largest whole unit).
 * @param fromMs the start, Unix milliseconds
 * @param nowMs now, Unix milliseconds
 */
export function formatAge(fromMs: number, nowMs: number): string {
  if (fromMs <= 0) return "";
  const s = Math.max(0, Math.floor((nowMs - fromMs) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Unix seconds (int64) as RFC 3339 UTC, or "" for 0. */
export function formatUnixSeconds(s: bigint): string {
  return s === 0n ? "" : new Date(Number(s) * 1000).toISOString().replace(".000Z", "Z");
}

/** Unix nanoseconds (int64) as RFC 3339 UTC with milliseconds. */
export function formatUnixNanos(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString();
}

/** Key/value lines, keys aligned: for `inspect`'s human output. */
export function formatFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return `${fields.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v === "" ? "-" : v}`).join("\n")}\n`;
}

/** A byte count for humans: "512B", "1.5KiB", "2.0GiB". */
export function formatBytes(n: bigint): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}B` : `${v.toFixed(1)}${units[i]}`;
}

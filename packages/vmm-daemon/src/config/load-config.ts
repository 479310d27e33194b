import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { type Config, envName, type KeySpec, type Schema, schema } from "./schema.js";

/** Where a configuration value came from, for `--check-config`. */
export type Source = "default" | "file" | "env";

export interface LoadedConfig {
  readonly config: Config;
  /** `section.key` → where its value came from. */
  readonly sources: ReadonlyMap<string, Source>;
  readonly file: string | undefined;
}

/**
 * A configuration problem. `message` is one line naming the key (and the file
 * line when it came from the file); the daemon prints it and exits with 2.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Loads the configuration: defaults, then the TOML file (when given), then
 * `VMM_<SECTION>_<KEY>` environment variables. Unknown sections and keys and
 * wrong types are errors. Relative paths in the file resolve against the
 * file's directory; relative paths from the environment against the cwd.
 */
export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  const values: Record<string, Record<string, unknown>> = {};
  const sources = new Map<string, Source>();
  for (const [section, keys] of Object.entries(schema)) {
    values[section] = {};
    for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) {
      values[section]![key] = spec.default;
      sources.set(`${section}.${key}`, "default");
    }
  }

  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    let doc: Record<string, unknown>;
    try {
      doc = parse(text) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof TomlError) {
        throw new ConfigError(
          `${file}:${err.line}:${err.column}: invalid TOML: ${err.message.split("\n")[0]}`,
        );
      }
      throw err;
    }
    const base = dirname(resolve(file));
    for (const [section, table] of Object.entries(doc)) {
      if (section === "firecracker" && isTable(table)) {
        const { jailer, ...rest } = table;
        if (jailer !== undefined)
          applyTable("firecracker.jailer", jailer, text, file, base, values, sources);
        applyTable(section, rest, text, file, base, values, sources);
        continue;
      }
      applyTable(section, table, text, file, base, values, sources);
    }
  }

  for (const [section, keys] of Object.entries(schema)) {
    for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) {
      const name = envName(section, key);
      const raw = env[name];
      if (raw === undefined) continue;
      values[section]![key] = fromEnv(raw, spec, name);
      sources.set(`${section}.${key}`, "env");
    }
  }
  return { config: values as unknown as Config, sources, file };
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function applyTable(
  section: string,
  table: unknown,
  text: string,
  file: string,
  base: string,
  values: Record<string, Record<string, unknown>>,
  sources: Map<string, Source>,
): void {
  const specs = (schema as Record<string, Record<string, KeySpec>>)[section];
  if (specs === undefined) {
    throw new ConfigError(
      `${file}:${lineOf(text, section, undefined)}: unknown section [${section}]; known sections: ${Object.keys(
        schema,
      )
        .map((s) => `[${s}]`)
        .join(", ")}`,
    );
  }
  if (!isTable(table)) {
    throw new ConfigError(
      `${file}:${lineOf(text, section, undefined)}: ${section} must be a table`,
    );
  }
  for (const [key, value] of Object.entries(table)) {
    const where = `${file}:${lineOf(text, section, key)}`;
    const spec = specs[key];
    if (spec === undefined) {
      throw new ConfigError(
        `${where}: unknown key ${section}.${key}; known keys: ${Object.keys(specs).join(", ")}`,
      );
    }
    const checked = check(value, spec, `${section}.${key}`, where);
    values[section]![key] =
      spec.type.t === "path" &&
      typeof checked === "string" &&
      checked !== "" &&
      !isAbsolute(checked)
        ? resolve(base, checked)
        : checked;
    sources.set(`${section}.${key}`, "file");
  }
}

function describe(spec: KeySpec): string {
  const t = spec.type;
  switch (t.t) {
    case "int":
      return `an integer from ${t.min} to ${t.max}`;
    case "bool":
      return "true or false";
    case "enum":
      return `one of ${t.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "strings":
      return "an array of strings";
    case "tables":
      return `tables of strings with the keys ${t.keys.join(", ")}`;
    default:
      return "a string";
  }
}

function check(value: unknown, spec: KeySpec, name: string, where: string): unknown {
  const fail = (): never => {
    throw new ConfigError(
      `${where}: ${name} must be ${describe(spec)}, got ${JSON.stringify(value)}`,
    );
  };
  const t = spec.type;
  switch (t.t) {
    case "int":
      if (typeof value === "bigint") {
        if (value < BigInt(t.min) || value > BigInt(t.max)) fail();
        return Number(value);
      }
      if (typeof value !== "number" || !Number.isInteger(value) || value < t.min || value > t.max)
        fail();
      return value;
    case "bool":
      if (typeof value !== "boolean") fail();
      return value;
    case "enum":
      if (typeof value !== "string" || !t.values.includes(value)) fail();
      return value;
    case "strings":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) fail();
      return value;
    case "tables":
      if (!isTable(value)) return fail();
      for (const [entry, inner] of Object.entries(value)) {
        const at = `${name}.${JSON.stringify(entry)}`;
        if (!isTable(inner)) throw new ConfigError(`${where}: ${at} must be a table`);
        for (const [k, v] of Object.entries(inner)) {
          if (!t.keys.includes(k)) {
            throw new ConfigError(
              `${where}: unknown key ${at}.${k}; known keys: ${t.keys.join(", ")}`,
            );
          }
          if (typeof v !== "string") throw new ConfigError(`${where}: ${at}.${k} must be a string`);
        }
      }
      return value;
    default:
      if (typeof value !== "string") fail();
      return value;
  }
}

function fromEnv(raw: string, spec: KeySpec, name: string): unknown {
  const t = spec.type;
  const where = `environment variable ${name}`;
  switch (t.t) {
    case "int": {
      if (!/^-?\d+$/.test(raw.trim()))
        throw new ConfigError(`${where} must be ${describe(spec)}, got ${JSON.stringify(raw)}`);
      return check(Number(raw.trim()), spec, name, where);
    }
    case "bool": {
      const v = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    }
    case "strings":
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
    case "path":
      return raw !== "" && !isAbsolute(raw) ? resolve(raw) : raw;
    case "tables": {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new ConfigError(`${where} must be a JSON object of objects, got invalid JSON`);
      }
      return check(parsed, spec, name, where);
    }
    default:
      return check(raw, spec, name, where);
  }
}

/**
 * Finds the line of `key` inside `[section]` (or of the section header), so
 * errors can point at it; smol-toml reports positions only for syntax errors.
 */
export function lineOf(text: string, section: string, key: string | undefined): number {
  const lines = text.split("\n");
  let current = "";
  let sectionLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const header = /^\[\s*([A-Za-z0-9_.-]+)\s*\]/.exec(line);
    if (header) {
      current = header[1]!;
      if (current === section) sectionLine = i + 1;
      continue;
    }
    if (key !== undefined && current === section) {
      const m = /^("?)([A-Za-z0-9_-]+)\1\s*=/.exec(line);
      if (m && m[2] === key) return i + 1;
    }
    // A dotted table inline: `jailer.enabled = true` under [firecracker].
    if (key !== undefined && section.includes(".") && current === section.split(".")[0]) {
      const sub = section.split(".")[1];
      const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\s*=/.exec(line);
      if (m && m[1] === sub && m[2] === key) return i + 1;
    }
  }
  return sectionLine || 1;
}

export type { Schema };

import type { LoadedConfig } from "./load-config.js";
import { envName, type KeySpec, schema } from "./schema.js";

/**
 * Renders the effective configuration as TOML-like lines, each with where its
 * value came from (default, file, or the environment variable's name).
 */
export function printConfig(loaded: LoadedConfig): string {
  const out: string[] = [`# effective configuration (file: ${loaded.file ?? "none"})`];
  for (const [section, keys] of Object.entries(schema)) {
    out.push("", `[${section}]`);
    for (const key of Object.keys(keys as Record<string, KeySpec>)) {
      const value = (loaded.config as unknown as Record<string, Record<string, unknown>>)[section]![
        key
      ];
      const source = loaded.sources.get(`${section}.${key}`);
      const from = source === "env" ? `env ${envName(section, key)}` : source;
      const shown =
        key.includes("token") && value !== ""
          ? '"<redacted>"'
          : (keys as Record<string, KeySpec>)[key]!.type.t === "tables"
            ? JSON.stringify(redactSecrets(value as Record<string, Record<string, string>>))
            : JSON.stringify(value);
      out.push(`${key} = ${shown}  # ${from}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** A table of string tables with every password and token value replaced. */
function redactSecrets(
  tables: Record<string, Record<string, string>>,
): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Object.entries(tables).map(([name, t]) => [
      name,
      Object.fromEntries(
        Object.entries(t).map(([k, v]) => [
          k,
          (k === "password" || k === "token") && v !== "" ? "<redacted>" : v,
        ]),
      ),
    ]),
  );
}

import { envName, type KeySpec, schema } from "./schema.js";

/**
 * Renders config.example.toml from the schema: every key with its doc, its
 * environment variable and its default. A test keeps the committed file equal
 * to this output.
 */
export function renderExampleConfig(): string {
  const out: string[] = [
    "# vmm-daemon configuration: every key, with its default.",
    "# Generated from packages/vmm-daemon/src/config/schema.ts (`vmm-daemon --print-example-config`).",
    "# Every key can be overridden by an environment variable VMM_<SECTION>_<KEY>, shown per key.",
    "# Relative paths are resolved against this file's directory.",
  ];
  for (const [section, keys] of Object.entries(schema)) {
    out.push("", `[${section}]`);
    for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) {
      out.push(
        `# ${spec.doc}`,
        `# env: ${envName(section, key)}`,
        `${key} = ${toToml(spec.default)}`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}

function toToml(v: KeySpec["default"]): string {
  if (Array.isArray(v)) return `[${v.map((s) => JSON.stringify(s)).join(", ")}]`;
  if (typeof v === "object") return "{}";
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

import { resolveSchema, type Schema } from "./api-spec.js";

/**
 * Rust integer types Firecracker deserializes into, by field name. The spec only
 * says `integer`; serde rejects out-of-range values with "expected u8" etc.
 * Anything not listed is a u64. Values from src/vmm/src/vmm_config/*.rs at v1.14.2.
 */
const intTypes: Record<string, { name: string; max: number }> = {
  vcpu_count: { name: "u8", max: 0xff },
  stats_polling_interval_s: { name: "u16", max: 0xffff },
  guest_cid: { name: "u32", max: 0xffff_ffff },
  amount_mib: { name: "u32", max: 0xffff_ffff },
  leaf: { name: "u32", max: 0xffff_ffff },
  subleaf: { name: "u32", max: 0xffff_ffff },
  flags: { name: "u32", max: 0xffff_ffff },
  addr: { name: "u32", max: 0xffff_ffff },
  index: { name: "u32", max: 0xffff_ffff },
};

/** A body that does not match the spec; `message` mimics serde_json's text. */
export class BodyValidationError extends Error {
  override readonly name = "BodyValidationError";
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "boolean") return `boolean \`${v}\``;
  if (typeof v === "number")
    return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (Array.isArray(v)) return "sequence";
  return "map";
}

/**
 * Checks `value` against `schema` the way Firecracker's serde structs do:
 * required fields, `deny_unknown_fields`, types, unsigned integer ranges, enums.
 * Optional fields may be `null` (serde maps null to `None`).
 * @throws BodyValidationError with serde's wording (without line/column).
 */
export function validateBody(value: unknown, schema: Schema, field = "", optional = false): void {
  const s = resolveSchema(schema);
  if (value === null && optional) return;
  if (s.enum && s.type === "string") {
    if (typeof value !== "string") throw invalidType(value, "a string");
    if (!s.enum.includes(value)) {
      const opts = s.enum.map((e) => `\`${String(e)}\``);
      const list = opts.length === 2 ? `${opts[0]} or ${opts[1]}` : `one of ${opts.join(", ")}`;
      throw new BodyValidationError(`unknown variant \`${value}\`, expected ${list}`);
    }
    return;
  }
  switch (s.type) {
    case "integer": {
      const t = intTypes[field] ?? { name: "u64", max: Number.MAX_SAFE_INTEGER };
      if (typeof value !== "number") throw invalidType(value, t.name);
      if (!Number.isInteger(value)) throw invalidType(value, t.name);
      if (value < 0 || value > t.max)
        throw new BodyValidationError(`invalid value: integer \`${value}\`, expected ${t.name}`);
      return;
    }
    case "boolean":
      if (typeof value !== "boolean") throw invalidType(value, "a boolean");
      return;
    case "string":
      if (typeof value !== "string") throw invalidType(value, "a string");
      return;
    case "array":
      if (!Array.isArray(value)) throw invalidType(value, "a sequence");
      for (const item of value) validateBody(item, s.items ?? {}, field, false);
      return;
    case "object":
    case undefined: {
      if (s.type === undefined && !s.properties) return; // free-form
      if (typeof value !== "object" || value === null || Array.isArray(value))
        throw invalidType(value, `struct ${field || "body"}`);
      const obj = value as Record<string, unknown>;
      const props = s.properties ?? {};
      if (s.additionalProperties === undefined || s.additionalProperties === false) {
        const known = Object.keys(props);
        for (const key of Object.keys(obj)) {
          if (!(key in props)) {
            const list = known.map((k) => `\`${k}\``).join(", ");
            throw new BodyValidationError(
              known.length === 0
                ? `unknown field \`${key}\`, there are no fields`
                : `unknown field \`${key}\`, expected ${known.length === 1 ? list : `one of ${list}`}`,
            );
          }
        }
      }
      for (const req of s.required ?? []) {
        if (!(req in obj)) throw new BodyValidationError(`missing field \`${req}\``);
      }
      for (const [key, v] of Object.entries(obj)) {
        const ps = props[key];
        if (ps) validateBody(v, ps, key, !(s.required ?? []).includes(key));
      }
      return;
    }
    default:
      return;
  }
}

function invalidType(value: unknown, what: string): BodyValidationError {
  return new BodyValidationError(`invalid type: ${describe(value)}, expected ${what}`);
}

/** Prefix Firecracker puts before every body deserialization error. */
export const deserializeErrorPrefix =
  "An error occurred when deserializing the json body of a request: ";

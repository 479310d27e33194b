import { parse } from "yaml";
import specText from "../firecracker-v1.14.yaml";

/** A (subset of a) Swagger 2.0 schema object, as used by the Firecracker spec. */
export type Schema = {
  $ref?: string;
  type?: "object" | "array" | "string" | "integer" | "boolean" | "number";
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  format?: string;
};

/** One operation of the spec: method + path template + its body schema (if any). */
export type Operation = {
  operationId: string;
  method: "GET" | "PUT" | "PATCH";
  /** Path template without the leading slash, e.g. `drives/{drive_id}`. */
  template: string;
  /** Schema of the `in: body` parameter, when the operation has one. */
  body?: Schema;
  bodyRequired: boolean;
};

type RawParam = { in?: string; name?: string; required?: boolean; schema?: Schema };
type RawOp = { operationId?: string; parameters?: RawParam[] };
type RawSpec = {
  paths: Record<string, Record<string, RawOp>>;
  definitions: Record<string, Schema>;
};

/** The Firecracker v1.14 OpenAPI (Swagger 2.0) document, bundled at build time. */
export const spec: RawSpec = parse(specText) as RawSpec;

/** Every operation of the spec. */
export const operations: Operation[] = Object.entries(spec.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => {
    const body = op.parameters?.find((p) => p.in === "body");
    return {
      operationId: op.operationId ?? `${method} ${path}`,
      method: method.toUpperCase() as Operation["method"],
      template: path.replace(/^\//, ""),
      ...(body?.schema ? { body: body.schema } : {}),
      bodyRequired: body?.required === true,
    };
  }),
);

/** Resolves a `#/definitions/X` reference (one level; the spec has no chains). */
export function resolveSchema(schema: Schema): Schema {
  let s = schema;
  while (s.$ref) {
    const name = s.$ref.replace("#/definitions/", "");
    const def = spec.definitions[name];
    if (!def)
      throw new Error(`fc-sim: spec reference ${s.$ref} not found in firecracker-v1.14.yaml`);
    s = def;
  }
  return s;
}

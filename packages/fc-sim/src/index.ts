export { runSimulator } from "./simulator.js";
export { runJailer } from "./jailer.js";
export { parseFcArgs, checkInstanceId, ArgsError } from "./cli-args.js";
export type { FcArgs } from "./cli-args.js";
export { parseJailerArgs, JailerArgsError } from "./jailer-args.js";
export type { JailerArgs } from "./jailer-args.js";

// For tests and sibling tooling.
export { encodeVmstate, decodeVmstate, describeVmstate, crc64, snapshotVersion, VmstateError } from "./vmstate-file.js";
export { validateBody, BodyValidationError } from "./body-validator.js";
export { operations } from "./api-spec.js";
export type { Operation, Schema } from "./api-spec.js";
export { mergePatch } from "./vmm.js";

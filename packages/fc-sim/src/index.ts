export type { Operation, Schema } from "./api-spec.js";
export { operations } from "./api-spec.js";
export { BodyValidationError, validateBody } from "./body-validator.js";
export type { FcArgs } from "./cli-args.js";
export { ArgsError, checkInstanceId, parseFcArgs } from "./cli-args.js";
export { runJailer } from "./jailer.js";
export type { JailerArgs } from "./jailer-args.js";
export { JailerArgsError, parseJailerArgs } from "./jailer-args.js";
export { runSimulator } from "./simulator.js";
export { mergePatch } from "./vmm.js";
// For tests and sibling tooling.
export {
  crc64,
  decodeVmstate,
  describeVmstate,
  encodeVmstate,
  snapshotVersion,
  VmstateError,
} from "./vmstate-file.js";

// The network code logs through vmm-core's Logger (a structural subset of pino's).
export { type Logger, silentLogger } from "../internal/logger.js";

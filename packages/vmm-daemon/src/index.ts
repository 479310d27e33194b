// Public API of vmm-daemon: the daemon's composition (backend + listeners) for
// tests and embedders that serve sandbox.v1 in their own process. The binary's
// entry point is main.ts; everything it assembles is exported here.

export type { Backend, FirecrackerChoice } from "./backend.js";
export { chooseFirecracker, createBackend } from "./backend.js";
export type { LoadedConfig, Source } from "./config/load-config.js";
export { ConfigError, loadConfig } from "./config/load-config.js";
export type { Config } from "./config/schema.js";
export { validateConfig } from "./config/validate-config.js";
export type { Daemon, DaemonOptions } from "./daemon.js";
export { startDaemon } from "./daemon.js";
export type { HttpMount } from "./http/http-mount.js";
export type { MetricsSource, PoolLevels } from "./http/metrics-source.js";
export type { Listener } from "./listeners.js";
export type { RootLoggerOptions } from "./logger.js";
export { createRootLogger } from "./logger.js";
export { VERSION } from "./version.js";

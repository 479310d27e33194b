import { createUnbuiltSandboxApi, type SandboxApi, type SnapshotApi } from "@vmm/grpc";
import type { Logger } from "pino";
import type { Config } from "./config/schema.js";

/** The sandbox backend the API serves, and how to release it. */
export interface Backend {
  readonly sandboxes: SandboxApi;
  readonly snapshots?: SnapshotApi;
  close(): Promise<void>;
}

/** Builds the backend from the configuration. */
export async function createBackend(_config: Config, _logger: Logger): Promise<Backend> {
  return { sandboxes: createUnbuiltSandboxApi(), close: async () => {} };
}

/** Describes what startup would do (network setup commands), for `--check-config --dry-run`. */
export async function describeStartup(_config: Config): Promise<string> {
  return "# no startup commands: the sandbox backend is not built yet\n";
}

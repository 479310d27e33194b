// @vmm/cli: the `vmm` command's programmatic surface (the binary is main.ts).

export type { ParsedCommandLine } from "./cli.js";
export { commandHelp, parseCLI, runCli, topHelp } from "./cli.js";
export type { Clients, ConnectionFlags, Endpoint } from "./client.js";
export { createClients, createTransport, defaultSocket, resolveEndpoint } from "./client.js";
export type { CommandContext, CommandDefinition, CommandResult, Io } from "./command.js";
export { commands } from "./commands/index.js";
export { CliError, CommandError, NotFoundError, SandboxFailedError, UsageError } from "./errors.js";
export type { ErrorContext, ErrorReport } from "./exit-codes.js";
export { describeError, ExitCode, grpcCodeName } from "./exit-codes.js";

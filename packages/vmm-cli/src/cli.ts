import {
  type Clients,
  type ConnectionFlags,
  createClients,
  createTransport,
  resolveEndpoint,
} from "./client.js";
import type { CommandContext, CommandDefinition, CommandResult, Io } from "./command.js";
import { COMMAND_GROUPS, type CommandGroup, isCommandGroup } from "./command-groups.js";
import { commands } from "./commands/index.js";
import { clientVersion } from "./commands/version.js";
import { globalFlags } from "./common-flags.js";
import { UsageError } from "./errors.js";
import { describeError, ExitCode } from "./exit-codes.js";
import { type FlagTable, formatFlagHelp, type ParsedArgs, parseFlags } from "./flags.js";

/** A parsed command line: help to print, or a command to run. */
export type ParsedCommandLine =
  | { readonly kind: "help"; readonly text: string }
  | {
      readonly kind: "command";
      readonly command: CommandDefinition;
      /** The command as typed, e.g. "rm" or "snapshot ls". */
      readonly name: string;
      readonly args: ParsedArgs<FlagTable>;
      readonly connection: ConnectionFlags;
    };

/** Global flags that take a value (so the word after them is not a command name). */
const valueFlagsBeforeCommand = new Set([
  "--socket",
  "--address",
  "--token",
  "--ca",
  "-o",
  "--output",
]);

/** Finds a command by the name typed ("rm", "snapshot ls"). */
export function findCommand(name: string): CommandDefinition | undefined {
  return commands.find((c) => c.names.includes(name));
}

/**
 * Parses argv (without node and script) into a command and its arguments,
 * without running anything. Global flags may stand before or after the
 * command name; everything after `--` belongs to the command.
 * @throws UsageError for unknown commands, flags or missing arguments
 */
export function parseCLI(argv: readonly string[]): ParsedCommandLine {
  const { wordIdx } = locateCommand(argv);
  const words = wordIdx.map((i) => argv[i]!);
  const restArgv = argv.filter((_, i) => !wordIdx.includes(i));
  const wantsHelp = restArgv.includes("--help") || restArgv.includes("-h");

  if (words.length === 0) {
    if (restArgv.length === 0 || wantsHelp) return { kind: "help", text: topHelp() };
    // `vmm --version`: the client's version only, without calling the daemon (`vmm version` does).
    if (restArgv.length === 1 && restArgv[0] === "--version")
      return { kind: "help", text: `vmm ${clientVersion}\n` };
    // Only flags: still check them, so "vmm --bogus" is a usage error.
    parseFlags(globalFlags, restArgv);
    throw new UsageError("missing command");
  }
  if (words[0] === "help") {
    const topic = words.slice(1).join(" ");
    if (topic === "") return { kind: "help", text: topHelp() };
    if (isCommandGroup(topic)) return { kind: "help", text: groupHelp(topic) };
    const cmd = findCommand(topic);
    if (!cmd) throw new UsageError(`unknown command "${topic}"`);
    return { kind: "help", text: commandHelp(cmd) };
  }
  if (isCommandGroup(words[0]!) && words.length === 1) {
    const group = words[0]!;
    if (wantsHelp) return { kind: "help", text: groupHelp(group) };
    throw new UsageError(
      `${group} needs a subcommand: ${COMMAND_GROUPS[group].subcommands}`,
      `see 'vmm ${group} --help'`,
    );
  }
  const name = words.join(" ");
  const command = findCommand(name);
  if (!command) {
    throw new UsageError(`unknown command "${name}"`, "see 'vmm --help' for the list of commands");
  }
  const table: FlagTable = { ...globalFlags, ...command.flags };
  let args: ParsedArgs<FlagTable>;
  try {
    args = parseFlags(table, restArgv);
  } catch (err) {
    if (err instanceof UsageError && command.args.rest !== "none" && !restArgv.includes("--")) {
      throw new UsageError(
        err.message,
        `put the guest command after --, e.g. vmm ${command.names[0]} ID -- ls -l`,
      );
    }
    if (err instanceof UsageError) throw new UsageError(err.message, `see 'vmm ${name} --help'`);
    throw err;
  }
  const values = args.values as Record<string, unknown>;
  if (values.help === true) return { kind: "help", text: commandHelp(command) };
  const connection: ConnectionFlags = {
    socket: values.socket as string | undefined,
    address: values.address as string | undefined,
    token: values.token as string | undefined,
    tls: values.tls === true,
    ca: values.ca as string | undefined,
  };
  let checked: ParsedArgs<FlagTable>;
  try {
    checked = checkArgs(command, name, args);
  } catch (err) {
    if (err instanceof UsageError && err.hint === undefined) {
      throw new UsageError(err.message, `see 'vmm ${name} --help'`);
    }
    throw err;
  }
  return { kind: "command", command, name, args: checked, connection };
}

/** Same as parseCLI, but a usage error comes back as a result. */
function parseCLIOrReport(argv: readonly string[]): ParsedCommandLine | CommandResult {
  try {
    return parseCLI(argv);
  } catch (err) {
    // run/exec report their own usage errors as 125 too (their exit codes belong to the guest command).
    const { command } = locateCommand(argv);
    return reportError(err, {
      command: command?.names[0],
      commandStatus: command?.commandStatus === true,
    });
  }
}

/** Finds the indexes of the command words ("list", or "snapshot" + "list") and the command. */
function locateCommand(argv: readonly string[]): {
  wordIdx: number[];
  command: CommandDefinition | undefined;
} {
  const wordIdx: number[] = [];
  for (let i = 0; i < argv.length && wordIdx.length < 2; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a.startsWith("-")) {
      if (valueFlagsBeforeCommand.has(a)) i++;
      continue;
    }
    if (wordIdx.length === 1 && !isCommandGroup(argv[wordIdx[0]!]!) && argv[wordIdx[0]!] !== "help")
      break;
    wordIdx.push(i);
  }
  const words = wordIdx.map((i) => argv[i]!);
  return { wordIdx, command: findCommand(words.join(" ")) };
}

/** Checks positional counts and moves extra positionals into `rest` for run/exec/create. */
function checkArgs(
  command: CommandDefinition,
  name: string,
  args: ParsedArgs<FlagTable>,
): ParsedArgs<FlagTable> {
  const spec = command.args;
  const required = spec.positionals.filter((p) => !p.endsWith("?"));
  let positionals = args.positionals;
  let rest = args.rest;
  if (positionals.length < required.length) {
    throw new UsageError(`${name} needs ${required.slice(positionals.length).join(" ")}`);
  }
  if (positionals.length > spec.positionals.length) {
    const extra = positionals.slice(spec.positionals.length);
    if (spec.rest === "none" || rest !== undefined) {
      throw new UsageError(`unexpected argument "${extra[0]}"`);
    }
    rest = extra;
    positionals = positionals.slice(0, spec.positionals.length);
  }
  if (spec.rest === "none" && rest !== undefined && rest.length > 0) {
    throw new UsageError(`${name} takes no command after --`);
  }
  if (spec.rest === "required" && (rest === undefined || rest.length === 0)) {
    throw new UsageError(`${name} needs a command: vmm ${name} ID -- CMD [ARG...]`);
  }
  return { values: args.values, positionals, rest };
}

/**
 * Runs a command line: parses it, runs the command and maps any error to its
 * message and exit code (describeError). Never throws; printing is the caller's.
 */
export async function runCli(argv: readonly string[], io: Io): Promise<CommandResult> {
  const parsed = parseCLIOrReport(argv);
  if ("exitCode" in parsed) return parsed;
  if (parsed.kind === "help") return { exitCode: ExitCode.ok, stdout: parsed.text };
  const { command, name, args, connection } = parsed;
  const errorCtx = { command: name, commandStatus: command.commandStatus === true };
  let endpoint: ReturnType<typeof resolveEndpoint>;
  try {
    endpoint = resolveEndpoint(connection, io.env);
  } catch (err) {
    return reportError(err, errorCtx);
  }
  const interrupt = new AbortController();
  const unsubscribe = [
    io.onSignal("SIGINT", () => interrupt.abort()),
    io.onSignal("SIGTERM", () => interrupt.abort()),
  ];
  let clients: Clients | undefined;
  const ctx: CommandContext = {
    io,
    endpoint,
    signal: interrupt.signal,
    clients: () => {
      clients ??= createClients(createTransport(endpoint));
      return clients;
    },
  };
  try {
    return await command.handler(ctx, args);
  } catch (err) {
    if (interrupt.signal.aborted) return { exitCode: ExitCode.interrupted };
    return reportError(err, {
      ...errorCtx,
      socket: endpoint.kind === "unix" ? endpoint.socket : undefined,
    });
  } finally {
    for (const u of unsubscribe) u();
  }
}

function reportError(err: unknown, ctx: Parameters<typeof describeError>[1]): CommandResult {
  const report = describeError(err, ctx);
  return { exitCode: report.exitCode, stderr: `${report.lines.join("\n")}\n` };
}

const exitCodeHelp = `Exit codes:
  0 ok · 1 error from the daemon or other · 2 usage error (also INVALID_ARGUMENT, ambiguous id
  prefix) · 3 not found · 4 daemon unreachable · 130 interrupted (Ctrl-C)
  run/exec: the command's own status; 124 --timeout hit, 125 vmm itself failed, 130 Ctrl-C`;

/** `vmm --help`. */
export function topHelp(): string {
  const rows = commands
    .filter((c) => !isCommandGroup(c.names[0]!.split(" ")[0]!))
    .map((c) => [c.names.join(", "), c.summary] as const);
  rows.splice(
    rows.length - 2,
    0,
    ...Object.entries(COMMAND_GROUPS).map(
      ([g, d]) =>
        [g, `${d.title.replace(/\.$/, "")} (${d.subcommands.replace(" or", ",")})`] as const,
    ),
  );
  const width = Math.max(...rows.map(([n]) => n.length));
  return `vmm: run code in Firecracker microVM sandboxes (client of the vmm daemon, sandbox.v1)

Usage: vmm [global flags] COMMAND [flags] [ARGS] [-- CMD...]

Commands:
${rows.map(([n, s]) => `  ${n.padEnd(width)}   ${s}`).join("\n")}

Global flags:
${formatFlagHelp(globalFlags)}

Ids may be given as a unique prefix. Run 'vmm COMMAND --help' for a command's flags;
'vmm --version' prints this client's version, 'vmm version' the daemon's too.

${exitCodeHelp}
`;
}

/** `vmm snapshot --help`. */
export function snapshotHelp(): string {
  return groupHelp("snapshot");
}

/** `vmm GROUP --help`: the group's commands. */
export function groupHelp(group: CommandGroup): string {
  const prefix = `${group} `;
  const subs = commands.filter((c) => c.names[0]!.startsWith(prefix));
  const width = Math.max(...subs.map((c) => c.names.join(", ").length));
  return `Usage: vmm ${group} COMMAND [flags] [ARGS]

${COMMAND_GROUPS[group].title}

Commands:
${subs
  .map(
    (c) =>
      `  ${c.names
        .map((n) => n.slice(prefix.length))
        .join(", ")
        .padEnd(width - prefix.length)}   ${c.summary}`,
  )
  .join("\n")}
`;
}

/** `vmm COMMAND --help`. */
export function commandHelp(cmd: CommandDefinition): string {
  const parts = [`Usage: vmm ${cmd.usage}`, cmd.summary];
  if (cmd.description) parts.push(cmd.description);
  if (cmd.names.length > 1) parts.push(`Aliases: ${cmd.names.slice(1).join(", ")}`);
  if (Object.keys(cmd.flags).length > 0) parts.push(`Flags:\n${formatFlagHelp(cmd.flags)}`);
  if (!cmd.offline) parts.push(`Global flags:\n${formatFlagHelp(globalFlags)}`);
  return `${parts.join("\n\n")}\n`;
}

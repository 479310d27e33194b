import {
  type Command,
  type CommandResult,
  type CommandRunner,
  formatCommand,
} from "./command-runner.js";

export interface DryRunCommandRunner extends CommandRunner {
  /** Every command asked for, in order (reads included). */
  readonly commands: readonly Command[];
}

export interface DryRunCommandRunnerOptions {
  /** Called with each command that would change state, shell-formatted. Default: none. */
  print?: (text: string) => void;
}

/**
 * Runs nothing: prints each state-changing command (for `--dry-run`) and
 * records every command. Reads (`ip netns list`) return empty output, so a
 * dry run plans as if the host were clean.
 */
export function createDryRunCommandRunner(
  options: DryRunCommandRunnerOptions = {},
): DryRunCommandRunner {
  const commands: Command[] = [];
  return {
    dryRun: true,
    commands,
    async run(command: Command, signal?: AbortSignal): Promise<CommandResult> {
      signal?.throwIfAborted();
      commands.push(command);
      if (command.readOnly !== true) options.print?.(formatCommand(command));
      return { stdout: "", stderr: "" };
    },
  };
}

import type { Command, CommandResult, CommandRunner } from "./command-runner.js";

export interface RecordingCommandRunner extends CommandRunner {
  /** Every command run (or attempted), in order. */
  readonly commands: readonly Command[];
}

/** Wraps a runner and records each command it is asked to run (tests, audits). */
export function createRecordingCommandRunner(inner: CommandRunner): RecordingCommandRunner {
  const commands: Command[] = [];
  return {
    dryRun: inner.dryRun,
    commands,
    run(command: Command, signal?: AbortSignal): Promise<CommandResult> {
      commands.push(command);
      return inner.run(command, signal);
    },
  };
}

import type { CommandContext, CommandResult } from "../command.js";
import { defineCommand, writeChunk } from "../command.js";
import { CommandError } from "../errors.js";
import { parseDurationSeconds, parseKeyValues } from "../flags.js";
import { resolveSandboxId } from "../resolve.js";

/** Flags shared by run and exec. */
export const processFlags = {
  env: {
    type: "string",
    multiple: true,
    value: "K=V",
    description: "add to the command's environment",
  },
  workdir: {
    type: "string",
    short: "w",
    value: "DIR",
    description: "working directory (default /)",
  },
  user: {
    type: "string",
    short: "u",
    value: "USER",
    description: "run as this user, by name or uid (default root)",
  },
  timeout: {
    type: "string",
    value: "DURATION",
    description: "kill the command after this long (exit 124)",
  },
  tty: {
    type: "boolean",
    short: "t",
    description: "run on a pseudo-terminal (stdout and stderr merge)",
  },
  tag: {
    type: "string",
    value: "NAME",
    description: "name the process for vmm ps and vmm kill (unique among running ones)",
  },
} as const;

/** `vmm run ID -- CMD...`: run a command to completion, streaming its output. */
export const runCommand = defineCommand({
  names: ["run"],
  summary: "Run a command in a sandbox and stream its output",
  usage: "run [flags] ID -- CMD [ARG...]",
  description:
    "The command's stdout goes to stdout and its stderr to stderr, byte for byte, and vmm exits\n" +
    "with the command's exit status. vmm's own failures exit 125, --timeout 124, Ctrl-C 130.",
  flags: processFlags,
  args: { positionals: ["ID"], rest: "required", complete: "sandbox" },
  commandStatus: true,
  async handler(ctx, { values, positionals, rest }) {
    const env = parseKeyValues("env", values.env);
    const timeoutSeconds =
      values.timeout === undefined ? 0 : parseDurationSeconds("timeout", values.timeout);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const stream = ctx.clients().sandbox.run(
      {
        id,
        cmd: [...(rest ?? [])],
        env,
        workingDir: values.workdir ?? "",
        user: values.user ?? "",
        tty: values.tty,
        timeoutSeconds,
        tag: values.tag ?? "",
      },
      { signal: ctx.signal },
    );
    return await copyProcessOutput(ctx, stream);
  },
});

/**
 * Copies RunOutput/ExecOutput chunks to stdout/stderr (kept apart, binary-safe,
 * with backpressure) until the final `done` message, whose exit code is returned.
 * @throws CommandError when the stream ends without a final message
 */
export async function copyProcessOutput(
  ctx: CommandContext,
  stream: AsyncIterable<{ stream: string; data: Uint8Array; exitCode: number; done: boolean }>,
): Promise<CommandResult> {
  for await (const out of stream) {
    if (out.data.length > 0) {
      await writeChunk(out.stream === "stderr" ? ctx.io.stderr : ctx.io.stdout, out.data);
    }
    // A status outside 0-255 cannot be an exit code: report it as 255.
    if (out.done)
      return { exitCode: out.exitCode >= 0 && out.exitCode <= 255 ? out.exitCode : 255 };
  }
  throw new CommandError("the daemon ended the stream without the command's exit status");
}

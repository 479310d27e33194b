import { defineCommand } from "../command.js";
import { parseDurationSeconds } from "../flags.js";
import { resolveSandboxId } from "../resolve.js";

/** `vmm stop ID`: graceful shutdown, forced after the timeout. */
export const stopCommand = defineCommand({
  names: ["stop"],
  summary: "Stop a sandbox's microVM (the record stays until remove)",
  usage: "stop [--timeout DURATION] ID",
  description: "Prints the id once stopped. ID may be a unique prefix.",
  flags: {
    timeout: {
      type: "string",
      value: "DURATION",
      description: "force-kill after this long (default 30s on the daemon)",
    },
  },
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const timeoutSeconds =
      values.timeout === undefined ? 0 : parseDurationSeconds("timeout", values.timeout);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx.clients().sandbox.stop({ id, timeoutSeconds }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${id}\n` };
  },
});

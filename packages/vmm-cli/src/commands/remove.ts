import { defineCommand } from "../command.js";
import { resolveSandboxId } from "../resolve.js";

/** `vmm remove ID`: stop if needed and release everything. */
export const removeCommand = defineCommand({
  names: ["remove", "rm"],
  summary: "Remove a sandbox and release what it holds",
  usage: "remove [--force] ID",
  description:
    "Prints the id once removed. --force is needed while a workload runs. ID may be a unique prefix.",
  flags: {
    force: { type: "boolean", short: "f", description: "remove even while a workload runs" },
  },
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx.clients().sandbox.remove({ id, force: values.force }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${id}\n` };
  },
});

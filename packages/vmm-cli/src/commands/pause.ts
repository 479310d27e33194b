import { defineCommand } from "../command.js";
import { resolveSandboxId } from "../resolve.js";

/** `vmm pause ID`: memory and device state to disk, the microVM's process ended. */
export const pauseCommand = defineCommand({
  names: ["pause"],
  summary: "Pause a ready sandbox (its memory goes to disk; resume brings it back)",
  usage: "pause ID",
  description:
    "Prints the id once paused. ID may be a unique prefix. Pausing a paused sandbox succeeds.",
  flags: {},
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { positionals }) {
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx.clients().sandbox.pause({ id }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${id}\n` };
  },
});

/** `vmm resume ID`: back to ready, agent answering. */
export const resumeCommand = defineCommand({
  names: ["resume"],
  summary: "Resume a paused sandbox",
  usage: "resume ID",
  description:
    "Prints the id once the sandbox is ready again. ID may be a unique prefix. Resuming a ready sandbox succeeds.",
  flags: {},
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { positionals }) {
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx.clients().sandbox.resume({ id }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${id}\n` };
  },
});

import pkg from "../../package.json" with { type: "json" };
import { defineCommand } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { describeError } from "../exit-codes.js";
import { parseOutputFormat, renderPlain } from "../output.js";

/** This CLI's version (from its package.json, bundled at build time). */
export const clientVersion: string = pkg.version;

/** The response header in which the daemon sends its version on every call. */
export const versionHeader = "vmm-version";

/** `vmm version`: the client's version and the daemon's. */
export const versionCommand = defineCommand({
  names: ["version"],
  summary: "Show the client's and the daemon's versions",
  usage: "version [-o json|yaml]",
  description:
    "The daemon's version is read from the vmm-version header of a List call. The client's\n" +
    "version is printed even when the daemon cannot be reached (the exit code then says why).",
  flags: { output: outputFlag(["table", "json", "yaml"]) },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    let daemon: string | undefined;
    let failure: ReturnType<typeof describeError> | undefined;
    try {
      let header: string | null = null;
      await ctx
        .clients()
        .sandbox.list({}, { signal: ctx.signal, onHeader: (h) => (header = h.get(versionHeader)) });
      daemon = header ?? "unknown (no vmm-version header)";
    } catch (err) {
      failure = describeError(err, {
        command: "version",
        socket: ctx.endpoint.kind === "unix" ? ctx.endpoint.socket : undefined,
      });
    }
    const stderr = failure ? `${failure.lines.join("\n")}\n` : undefined;
    const exitCode = failure?.exitCode ?? 0;
    if (format === "json" || format === "yaml") {
      const doc =
        daemon === undefined ? { client: clientVersion } : { client: clientVersion, daemon };
      return { exitCode, stdout: renderPlain(format, doc), ...(stderr ? { stderr } : {}) };
    }
    const lines = [`Client: ${clientVersion}`];
    if (daemon !== undefined) lines.push(`Daemon: ${daemon}`);
    return { exitCode, stdout: `${lines.join("\n")}\n`, ...(stderr ? { stderr } : {}) };
  },
});

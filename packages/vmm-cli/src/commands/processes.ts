import { ListProcessesResponseSchema } from "@vmm/proto";
import { defineCommand } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { UsageError } from "../errors.js";
import { formatAge, formatTable, parseOutputFormat, renderMessage } from "../output.js";
import { resolveSandboxId } from "../resolve.js";

/** The signal names `vmm kill -s` takes (the daemon's SignalProcess list). */
const SIGNALS = ["TERM", "KILL", "INT", "HUP", "STOP", "CONT", "USR1", "USR2"] as const;

/** `vmm ps ID`: the processes started through run/exec that still run. */
export const psCommand = defineCommand({
  names: ["ps"],
  summary: "List the processes started with run/exec that still run in a sandbox",
  usage: "ps [--json | -o json|yaml] ID",
  description:
    "Columns: PID TAG TTY AGE COMMAND (PID is the guest's), oldest first. Only processes started\n" +
    "through run, exec or create's command are listed, not their children. ID may be a unique prefix.",
  flags: {
    json: { type: "boolean", description: "print JSON (same as -o json)" },
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    if (values.json && values.output !== undefined && values.output !== "json") {
      throw new UsageError(`--json and -o ${values.output} contradict each other`);
    }
    const format = values.json
      ? "json"
      : parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const res = await ctx.clients().sandbox.listProcesses({ id }, { signal: ctx.signal });
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, ListProcessesResponseSchema, res) };
    }
    const now = ctx.io.now();
    const rows = res.processes.map((p) => [
      String(p.pid),
      p.tag,
      p.tty ? "yes" : "no",
      formatAge(Number(p.startedAt) * 1000, now),
      p.cmd.map(shellWord).join(" "),
    ]);
    return { exitCode: 0, stdout: formatTable(["PID", "TAG", "TTY", "AGE", "COMMAND"], rows) };
  },
});

/** `vmm kill ID PID|TAG [-s SIG]`: signal a process's group. */
export const killCommand = defineCommand({
  names: ["kill"],
  summary: "Send a signal to a process started with run/exec (by guest pid or tag)",
  usage: "kill [-s SIGNAL] ID PID|TAG",
  description:
    "A number is a guest pid (as vmm ps shows), anything else a tag (tags are never all digits).\n" +
    `The signal goes to the process's group. SIGNAL is one of ${SIGNALS.join(", ")} (a SIG prefix\n` +
    "is accepted, case does not matter); default TERM. The run/exec attached to the process ends\n" +
    "with its status (128+N for signal N).",
  flags: {
    signal: {
      type: "string",
      short: "s",
      value: "SIGNAL",
      description: `signal to send (default TERM)`,
    },
  },
  args: { positionals: ["ID", "PID|TAG"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const signal = parseSignal(values.signal ?? "TERM");
    const target = positionals[1]!;
    const byPid = /^[0-9]+$/.test(target);
    const pid = byPid ? Number(target) : 0;
    if (byPid && (pid < 1 || pid > 0x7fffffff)) {
      throw new UsageError(`pid ${target} is out of range (1-2147483647)`);
    }
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx
      .clients()
      .sandbox.signalProcess(byPid ? { id, pid, signal } : { id, tag: target, signal }, {
        signal: ctx.signal,
      });
    return { exitCode: 0 };
  },
});

/** "term", "SIGTERM", "sigkill" → the wire name; a usage error for anything else. */
function parseSignal(text: string): string {
  const upper = text.toUpperCase();
  const bare = upper.startsWith("SIG") ? upper.slice(3) : upper;
  if ((SIGNALS as readonly string[]).includes(bare)) return bare;
  throw new UsageError(`-s wants one of ${SIGNALS.join(", ")}, got "${text}"`);
}

/** An argv word as a shell would need it (for display only). */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
}

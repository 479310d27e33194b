import { ListSandboxesResponseSchema } from "@vmm/proto";
import { SANDBOX_STATES } from "@vmm/proto/wire";
import { defineCommand } from "../command.js";
import { labelFlag, outputFlag } from "../common-flags.js";
import { parseKeyValues } from "../flags.js";
import { listAllSandboxes } from "../list-all.js";
import {
  formatAge,
  formatLabels,
  formatTable,
  formatUnixSeconds,
  parseOutputFormat,
  renderMessage,
} from "../output.js";

/** `vmm list`: the sandboxes, filtered by state and labels. */
export const listCommand = defineCommand({
  names: ["list", "ls"],
  summary: "List sandboxes",
  usage: "list [--state STATE] [--label K=V]... [-q] [-o wide|json|yaml]",
  description:
    "Columns: ID STATE IP AGE LABELS (wide adds CREATED). --label filters are ANDed.\n" +
    "-q prints the ids only, one per line. Every page of the daemon's answer is fetched.",
  flags: {
    state: {
      type: "string",
      value: "STATE",
      description: "only sandboxes in this state",
      choices: SANDBOX_STATES,
    },
    label: labelFlag("only sandboxes with this label"),
    quiet: { type: "boolean", short: "q", description: "print ids only" },
    output: outputFlag(["table", "wide", "json", "yaml"]),
  },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "wide", "json", "yaml"]);
    const res = await listAllSandboxes(
      ctx.clients(),
      { state: values.state ?? "", labels: parseKeyValues("label", values.label) },
      ctx.signal,
    );
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, ListSandboxesResponseSchema, res) };
    }
    if (values.quiet) {
      return { exitCode: 0, stdout: res.sandboxes.map((s) => `${s.id}\n`).join("") };
    }
    const now = ctx.io.now();
    const wide = format === "wide";
    const headers = wide
      ? ["ID", "STATE", "IP", "CREATED", "AGE", "LABELS"]
      : ["ID", "STATE", "IP", "AGE", "LABELS"];
    const rows = res.sandboxes.map((s) => {
      const age = formatAge(Number(s.createdAt) * 1000, now);
      const labels = formatLabels(s.labels);
      return wide
        ? [s.id, s.state, s.ipAddress, formatUnixSeconds(s.createdAt), age, labels]
        : [s.id, s.state, s.ipAddress, age, labels];
    });
    return { exitCode: 0, stdout: formatTable(headers, rows) };
  },
});

import { ListSandboxesResponseSchema } from "@vmm/proto";
import { SANDBOX_STATES } from "@vmm/proto/wire";
import { defineCommand } from "../command.js";
import { labelFlag, outputFlag } from "../common-flags.js";
import { UsageError } from "../errors.js";
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
import { listFiles, listFilesFlags } from "./files.js";

/** `vmm list`: the sandboxes, filtered by state and labels. */
export const listCommand = defineCommand({
  names: ["list", "ls"],
  summary: "List sandboxes (or, with ID:/PATH, a directory in a sandbox)",
  usage:
    "list [--state STATE] [--label K=V]... [-q] [-o wide|json|yaml]\n" +
    "  vmm ls [-R] [--depth N] [-o json|yaml] ID:/PATH",
  description:
    "Columns: ID STATE IP AGE LABELS (wide adds CREATED). --label filters are ANDed.\n" +
    "-q prints the ids only, one per line. Every page of the daemon's answer is fetched.\n" +
    "With ID:/PATH (ID may be a unique prefix): the directory's entries, MODE SIZE MODIFIED NAME\n" +
    "sorted by name; -R lists the whole tree (64 levels), --depth N that many levels.",
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
    ...listFilesFlags,
  },
  args: { positionals: ["ID:/PATH?"], rest: "none" },
  async handler(ctx, { values, positionals }) {
    const target = positionals[0];
    if (target !== undefined) {
      if (values.state !== undefined || (values.label?.length ?? 0) > 0 || values.quiet === true) {
        throw new UsageError("--state, --label and -q list sandboxes, not a directory");
      }
      return listFiles(ctx, values, target);
    }
    if (values.recursive || values.depth !== undefined) {
      throw new UsageError("-R and --depth need ID:/PATH");
    }
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

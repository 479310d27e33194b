import {
  CheckpointResponseSchema,
  ListSnapshotsResponseSchema,
  RestoreResponseSchema,
} from "@vmm/proto";
import { defineCommand } from "../command.js";
import { labelFlag, outputFlag } from "../common-flags.js";
import { parseDurationSeconds, parseKeyValues } from "../flags.js";
import { listAllSnapshots } from "../list-all.js";
import {
  formatAge,
  formatBytes,
  formatLabels,
  formatTable,
  parseOutputFormat,
  renderMessage,
} from "../output.js";
import { resolveSandboxId, resolveSnapshotId } from "../resolve.js";

/** `vmm snapshot create ID`: checkpoint a ready sandbox. */
export const snapshotCreateCommand = defineCommand({
  names: ["snapshot create"],
  summary: "Snapshot a ready sandbox (pause, write, resume)",
  usage: "snapshot create [--name NAME] [--label K=V]... [-o json|yaml] ID",
  description: "Prints the new snapshot's id. ID may be a unique prefix of the sandbox id.",
  flags: {
    name: { type: "string", value: "NAME", description: "a human name for the snapshot" },
    label: labelFlag("add a label to the snapshot"),
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const labels = parseKeyValues("label", values.label);
    const sandboxId = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const res = await ctx
      .clients()
      .snapshot.checkpoint({ sandboxId, name: values.name ?? "", labels }, { signal: ctx.signal });
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, CheckpointResponseSchema, res) };
    }
    return { exitCode: 0, stdout: `${res.snapshotId}\n` };
  },
});

/** `vmm snapshot list`: the snapshot catalog. */
export const snapshotListCommand = defineCommand({
  names: ["snapshot list", "snapshot ls"],
  summary: "List snapshots",
  usage: "snapshot list [--sandbox-id ID] [--label K=V]... [-q] [-o wide|json|yaml]",
  description:
    "Columns: ID NAME SANDBOX CREATED LABELS (CREATED is the age; wide adds the time, SIZE,\n" +
    "USABLE and DIR). --sandbox-id is an exact id (the sandbox may be gone).",
  flags: {
    "sandbox-id": {
      type: "string",
      value: "ID",
      description: "only snapshots of this sandbox (exact id)",
    },
    label: labelFlag("only snapshots with this label"),
    quiet: { type: "boolean", short: "q", description: "print ids only" },
    output: outputFlag(["table", "wide", "json", "yaml"]),
  },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "wide", "json", "yaml"]);
    const res = await listAllSnapshots(
      ctx.clients(),
      { sandboxId: values["sandbox-id"] ?? "", labels: parseKeyValues("label", values.label) },
      ctx.signal,
    );
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, ListSnapshotsResponseSchema, res) };
    }
    if (values.quiet)
      return { exitCode: 0, stdout: res.snapshots.map((s) => `${s.id}\n`).join("") };
    const now = ctx.io.now();
    const wide = format === "wide";
    const headers = wide
      ? ["ID", "NAME", "SANDBOX", "CREATED", "TIME", "LABELS", "SIZE", "USABLE", "DIR"]
      : ["ID", "NAME", "SANDBOX", "CREATED", "LABELS"];
    const rows = res.snapshots.map((s) => {
      const created = Date.parse(s.createdAt);
      const age = Number.isNaN(created) ? "" : formatAge(created, now);
      const labels = formatLabels(s.labels);
      if (!wide) return [s.id, s.name, s.sandboxId, age, labels];
      const usable = s.usable ? "yes" : s.unusableReason ? `no: ${s.unusableReason}` : "no";
      return [
        s.id,
        s.name,
        s.sandboxId,
        age,
        s.createdAt,
        labels,
        formatBytes(s.sizeBytes),
        usable,
        s.snapshotDir,
      ];
    });
    return { exitCode: 0, stdout: formatTable(headers, rows) };
  },
});

/** `vmm snapshot restore SNAPSHOT`: a new sandbox from a snapshot. */
export const snapshotRestoreCommand = defineCommand({
  names: ["snapshot restore"],
  summary: "Create a new sandbox from a snapshot (ready when it returns)",
  usage: "snapshot restore [--id ID] [--ttl DURATION] [--label K=V]... [-o json|yaml] SNAPSHOT",
  description:
    "Prints the new sandbox's id. SNAPSHOT may be a unique prefix of the snapshot id. The new\n" +
    "sandbox always gets its own network slot (network_override).",
  flags: {
    id: { type: "string", value: "ID", description: "the new sandbox's id (default: generated)" },
    ttl: {
      type: "string",
      value: "DURATION",
      description: "remove the new sandbox this long after the restore",
    },
    label: labelFlag("label the new sandbox"),
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: ["SNAPSHOT"], rest: "none", complete: "snapshot" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const labels = parseKeyValues("label", values.label);
    const ttlSeconds = values.ttl === undefined ? 0 : parseDurationSeconds("ttl", values.ttl);
    const snapshotId = await resolveSnapshotId(ctx.clients(), positionals[0]!, ctx.signal);
    const res = await ctx
      .clients()
      .snapshot.restore(
        { id: values.id ?? "", snapshotId, labels, ttlSeconds, networkOverride: true },
        { signal: ctx.signal },
      );
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, RestoreResponseSchema, res) };
    }
    return { exitCode: 0, stdout: `${res.id}\n` };
  },
});

/** `vmm snapshot delete SNAPSHOT`: remove a snapshot and its files. */
export const snapshotDeleteCommand = defineCommand({
  names: ["snapshot delete", "snapshot rm"],
  summary: "Delete a snapshot and its files",
  usage: "snapshot delete SNAPSHOT",
  description: "Prints the id once deleted. SNAPSHOT may be a unique prefix.",
  flags: {},
  args: { positionals: ["SNAPSHOT"], rest: "none", complete: "snapshot" },
  async handler(ctx, { positionals }) {
    const snapshotId = await resolveSnapshotId(ctx.clients(), positionals[0]!, ctx.signal);
    await ctx.clients().snapshot.deleteSnapshot({ snapshotId }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${snapshotId}\n` };
  },
});

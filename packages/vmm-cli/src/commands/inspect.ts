import { type NetworkPolicy, type SandboxInfo, SandboxInfoSchema } from "@vmm/proto";
import { defineCommand } from "../command.js";
import { outputFlag } from "../common-flags.js";
import {
  formatFields,
  formatLabels,
  formatUnixSeconds,
  parseOutputFormat,
  renderMessage,
} from "../output.js";
import { resolveSandboxId } from "../resolve.js";

/** `vmm inspect ID`: everything the daemon knows about one sandbox. */
export const inspectCommand = defineCommand({
  names: ["inspect"],
  summary: "Show details of a sandbox",
  usage: "inspect [-o json|yaml] ID",
  description: "ID may be a unique prefix of the sandbox id.",
  flags: { output: outputFlag(["table", "json", "yaml"]) },
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const info = await ctx.clients().sandbox.inspect({ id }, { signal: ctx.signal });
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, SandboxInfoSchema, info) };
    }
    return { exitCode: 0, stdout: formatFields(sandboxInfoFields(info)) };
  },
});

/** The human form of SandboxInfo, one field per line. */
export function sandboxInfoFields(info: SandboxInfo): [string, string][] {
  const fields: [string, string][] = [
    ["ID", info.id],
    ["State", info.state],
    ["Labels", formatLabels(info.labels)],
    ["vCPUs", info.limits ? String(info.limits.vcpus) : ""],
    ["Memory", info.limits ? `${info.limits.memoryMib} MiB` : ""],
    ["IP", info.network?.ipAddress ?? ""],
    ["Gateway", info.network?.gateway ?? ""],
    ["TAP", info.network?.tapName ?? ""],
    ["Netns", info.network?.netns ?? ""],
    ["Created", formatUnixSeconds(info.createdAt)],
    ["Ready", formatUnixSeconds(info.readyAt)],
    ["Expires", formatUnixSeconds(info.expiresAt)],
    ["Paused", formatUnixSeconds(info.pausedAt)],
    ["Disk", info.diskBytes === 0n ? "" : `${info.diskBytes} bytes`],
    [
      "Last exit",
      info.lastExitedAt === 0n
        ? ""
        : `${info.lastExitCode} at ${formatUnixSeconds(info.lastExitedAt)}`,
    ],
    ["Created from", info.createdFrom],
    ["Snapshot", info.snapshotId],
    ["Kernel", info.kernel],
    ["Rootfs", info.rootfs],
    ["Image", info.image === "" ? "" : `${info.image} (${info.imageDigest})`],
    ["Boot args", info.bootArgs],
    ["PID", info.pid === 0n ? "" : String(info.pid)],
    ["Egress", formatPolicy(info.networkPolicy)],
    ["Ports", info.exposedPorts.map((p) => `${p.guestPort} → ${p.hostAddress}`).join(", ")],
  ];
  if (info.error !== "") fields.push(["Error", info.error]);
  return fields;
}

/** An egress policy in one line; "" for none (the default: internet on, nothing denied). */
function formatPolicy(policy: NetworkPolicy | undefined): string {
  if (!policy) return "";
  const parts = [policy.internet ? "internet on" : "internet off"];
  if (policy.allowOut.length > 0) parts.push(`allow ${policy.allowOut.join(" ")}`);
  if (policy.denyOut.length > 0) parts.push(`deny ${policy.denyOut.join(" ")}`);
  return parts.join("; ");
}

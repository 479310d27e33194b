import { CheckHostResponseSchema } from "@vmm/proto";
import { defineCommand } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { parseOutputFormat, renderMessage } from "../output.js";

const MARK: Record<string, string> = { ok: "ok  ", warn: "WARN", fail: "FAIL" };

/** `vmm doctor`: the daemon's host checks (HostService.CheckHost). */
export const doctorCommand = defineCommand({
  names: ["doctor"],
  summary: "Check whether the daemon's host can run sandboxes",
  usage: "doctor [-o json|yaml]",
  description:
    "Asks the daemon to check its host: KVM, Firecracker, the default kernel and rootfs,\n" +
    "nftables, userfaultfd, cgroup v2, data_dir (reflinks, space), socket path length.\n" +
    "Each problem comes with a one-line fix. Exit code 1 when a check failed. Without a\n" +
    "running daemon, run `vmm-daemon --check-host` on the host instead.",
  flags: { output: outputFlag(["table", "json", "yaml"]) },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const res = await ctx.clients().host.checkHost({}, { signal: ctx.signal });
    const exitCode = res.ok ? 0 : 1;
    if (format === "json" || format === "yaml") {
      return { exitCode, stdout: renderMessage(format, CheckHostResponseSchema, res) };
    }
    const lines = res.checks.flatMap((c) => [
      `${MARK[c.status] ?? c.status}  ${c.name}: ${c.detail}`,
      ...(c.fix !== "" ? [`      fix: ${c.fix}`] : []),
    ]);
    const failed = res.checks.filter((c) => c.status === "fail").length;
    lines.push(failed > 0 ? `${failed} check(s) failed` : "no failures");
    return { exitCode, stdout: `${lines.join("\n")}\n` };
  },
});

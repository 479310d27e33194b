import { create } from "@bufbuild/protobuf";
import { ExposePortResponseSchema, type NetworkPolicy, NetworkPolicySchema } from "@vmm/proto";
import { defineCommand } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { UsageError } from "../errors.js";
import type { FlagTable } from "../flags.js";
import { parseOutputFormat, renderMessage } from "../output.js";
import { resolveSandboxId } from "../resolve.js";

/** `--internet`, `--allow-out`, `--deny-out`: an egress policy (create, policy). */
export const policyFlags = {
  internet: {
    type: "string",
    value: "BOOL",
    description: "egress to anything not denied (true, the default) or only --allow-out (false)",
  },
  "allow-out": {
    type: "string",
    multiple: true,
    value: "CIDR|HOST",
    description: "destination reachable even with --internet=false",
  },
  "deny-out": {
    type: "string",
    multiple: true,
    value: "CIDR|HOST",
    description: "destination never reachable; wins over --allow-out",
  },
} as const satisfies FlagTable;

/**
 * The policy the flags describe, or undefined when none is given (the
 * daemon's default: internet on, nothing denied). `--internet` defaults to
 * true, so `--deny-out X` alone keeps the internet.
 */
export function policyFromFlags(values: {
  internet?: string | undefined;
  "allow-out": readonly string[];
  "deny-out": readonly string[];
}): NetworkPolicy | undefined {
  const given =
    values.internet !== undefined || values["allow-out"].length + values["deny-out"].length > 0;
  if (!given) return undefined;
  return create(NetworkPolicySchema, {
    internet: values.internet === undefined ? true : parseBool("internet", values.internet),
    allowOut: [...values["allow-out"]],
    denyOut: [...values["deny-out"]],
  });
}

function parseBool(flag: string, text: string): boolean {
  if (/^(true|yes|on|1)$/i.test(text)) return true;
  if (/^(false|no|off|0)$/i.test(text)) return false;
  throw new UsageError(`--${flag} wants true or false, got "${text}"`);
}

/** `vmm policy ID [flags]`: replace a sandbox's egress policy, live. */
export const policyCommand = defineCommand({
  names: ["policy"],
  summary: "Replace a sandbox's egress policy, live",
  usage: "policy ID [--internet=BOOL] [--allow-out CIDR|HOST]... [--deny-out CIDR|HOST]...",
  description:
    "The new policy replaces the old one whole; with no flags the default is restored (internet\n" +
    "on, nothing denied). Host names are resolved by the daemon now, not later. Connections the\n" +
    "new policy still allows are kept; ones it denies are cut. Prints the id.\n\n" +
    "Example:\n  vmm policy sb-1 --internet=false --allow-out 10.0.0.0/8 --allow-out pypi.org",
  flags: policyFlags,
  args: { positionals: ["ID"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const policy = policyFromFlags(values) ?? create(NetworkPolicySchema, { internet: true });
    await ctx.clients().sandbox.updateNetworkPolicy({ id, policy }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${id}\n` };
  },
});

/** `vmm port`'s table output: the host address, then the proxy URL when the daemon has one. */
export function portText(res: { hostAddress: string; url: string }): string {
  return `${res.hostAddress}\n${res.url === "" ? "" : `${res.url}\n`}`;
}

/** `vmm port ID GUEST_PORT`: a host address forwarding to a guest TCP port. */
export const portCommand = defineCommand({
  names: ["port"],
  summary: "Expose a guest TCP port on the daemon's host",
  usage: "port ID GUEST_PORT",
  description:
    "Prints ip:port on the daemon's host that forwards to GUEST_PORT in the sandbox (the same\n" +
    "address each time for the same port). It lasts until the sandbox stops or is removed.\n" +
    "When the daemon's HTTP proxy is on ([proxy] listen), a second line prints the port's URL,\n" +
    "which carries the sandbox's access token: share it only with whoever may use the sandbox.\n\n" +
    "Example:\n  curl http://$(vmm port sb-1 8080)/",
  flags: { output: outputFlag(["table", "json", "yaml"]) },
  args: { positionals: ["ID", "GUEST_PORT"], rest: "none", complete: "sandbox" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const text = positionals[1]!;
    if (!/^[0-9]{1,5}$/.test(text))
      throw new UsageError(`GUEST_PORT wants a port number, got "${text}"`);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const res = await ctx
      .clients()
      .sandbox.exposePort({ id, guestPort: Number(text), protocol: "tcp" }, { signal: ctx.signal });
    if (format === "json" || format === "yaml")
      return { exitCode: 0, stdout: renderMessage(format, ExposePortResponseSchema, res) };
    return { exitCode: 0, stdout: portText(res) };
  },
});

import type { FlagSpec, FlagTable } from "./flags.js";

/** Flags accepted by every command, before or after its name. */
export const globalFlags = {
  socket: {
    type: "string",
    value: "PATH",
    description: "daemon Unix socket (env VMM_SOCKET; default /run/vmm/vmm.sock)",
  },
  address: {
    type: "string",
    value: "HOST:PORT",
    description: "daemon TCP address instead of the socket (env VMM_ADDRESS)",
  },
  token: { type: "string", value: "TOKEN", description: "bearer token for TCP (env VMM_TOKEN)" },
  tls: { type: "boolean", description: "use TLS with --address" },
  ca: {
    type: "string",
    value: "FILE",
    description: "PEM CA certificate to verify the daemon (implies --tls)",
  },
  help: { type: "boolean", short: "h", description: "show help" },
} as const satisfies FlagTable;

/** `-o/--output` with the given formats. */
export function outputFlag<const C extends readonly string[]>(choices: C) {
  return {
    type: "string",
    short: "o",
    value: "FORMAT",
    description: "output format",
    choices,
  } as const satisfies FlagSpec;
}

/** `--label K=V`, repeatable. */
export function labelFlag(description: string) {
  return { type: "string", multiple: true, value: "K=V", description } as const satisfies FlagSpec;
}

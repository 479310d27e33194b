import { statSync } from "node:fs";
import { isIP } from "node:net";
import { ConfigError } from "./config/load-config.js";
import type { Config } from "./config/schema.js";

/** What ExposePort can do on this daemon: where forwarders listen, or why it cannot work. */
export type PortsOption = { readonly listenHost: string } | { readonly unavailable: string };

/**
 * `[ports] listen_host`, checked. A forwarder dials the sandbox IP from the
 * daemon's own network namespace, so ports need that namespace to hold the
 * host ends of the sandboxes' links: with `network.host_netns` naming another
 * namespace (a test or dev setup) ExposePort answers FAILED_PRECONDITION
 * unless the daemon itself runs in it.
 */
export function portsFromConfig(config: Config): PortsOption {
  const listenHost = config.ports.listen_host;
  if (isIP(listenHost) === 0) {
    throw new ConfigError(
      `ports.listen_host ${JSON.stringify(listenHost)} is not an IP address (e.g. 127.0.0.1, 0.0.0.0)`,
    );
  }
  const hostNetns = config.network.host_netns;
  if (hostNetns !== "" && !sameNetns(`/run/netns/${hostNetns}`, "/proc/self/ns/net")) {
    return {
      unavailable: `exposed ports need the daemon to run in network.host_netns ${hostNetns} (it dials the sandbox addresses from its own namespace)`,
    };
  }
  return { listenHost };
}

function sameNetns(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

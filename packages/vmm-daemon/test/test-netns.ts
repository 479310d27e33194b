import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" });

/** Every named network namespace on the machine. */
export const netnsNames = (): string[] =>
  sh("ip", ["netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "");

/** Interface names in `netns` (the test's own namespace when absent). */
export const links = (netns?: string): string[] =>
  sh("ip", [...(netns ? ["-n", netns] : []), "-o", "link"])
    .split("\n")
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? "")
    .filter((n) => n !== "");

/** `nft list tables` inside `netns`. */
export const nftTables = (netns: string): string =>
  sh("ip", ["netns", "exec", netns, "nft", "list", "tables"]);

/**
 * Names for one suite's network objects, made unique by a random tag: slot
 * namespaces "<tag>-<n>" (`prefix`), host veth ends "<tag>-h<n>", namespaces
 * playing the host "<tag>host<k>", and a /24 under 10.232.<octet>. Nothing is
 * created in the root namespace.
 */
export function testNetns(letters: string) {
  const tag = `${letters}${randomBytes(2).toString("hex")}`;
  let hosts = 0;
  return {
    tag,
    prefix: `${tag}-`,
    octet: 100 + Math.floor(Math.random() * 100),
    /** The namespaces of this suite. */
    ours: () => netnsNames().filter((n) => n.startsWith(tag)),
    /** A fresh namespace with loopback up, to play the host side. */
    makeHostNetns(): string {
      const name = `${tag}host${hosts++}`;
      sh("ip", ["netns", "add", name]);
      sh("ip", ["-n", name, "link", "set", "lo", "up"]);
      return name;
    },
  };
}

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * Resolves `grpc.socket_group` (a group name or a numeric gid) to a gid, or
 * undefined when the group does not exist. Names go through `getent group`
 * so NSS sources (LDAP, sssd) count; /etc/group is the fallback where getent
 * is missing.
 */
export function resolveGroup(group: string): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    const line = execFileSync("getent", ["group", group], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return gidOf(line, group);
  } catch (err) {
    // getent exits 2 for an unknown key; anything else (ENOENT: no getent) falls back.
    if ((err as { status?: number }).status === 2) return undefined;
  }
  try {
    return gidOf(readFileSync("/etc/group", "utf8"), group);
  } catch {
    return undefined;
  }
}

function gidOf(text: string, group: string): number | undefined {
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

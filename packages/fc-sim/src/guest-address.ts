import { spawnSync } from "node:child_process";

/**
 * The guest address of a kernel `ip=<client>:…` argument, if any
 * (Documentation/admin-guide/nfs/nfsroot.rst).
 */
export function guestAddressFromCmdline(cmdline: string): string | undefined {
  const m = /(?:^|\s)ip=([0-9]{1,3}(?:\.[0-9]{1,3}){3}):/.exec(cmdline);
  return m?.[1];
}

/**
 * fc-sim has no guest network stack: its guest's processes run in Firecracker's
 * own network namespace (the sandbox's slot). So that connections DNATed to
 * the guest address (the sandbox IP, exposed ports) reach them, the address is
 * put on `lo` there, as a real guest would hold it on its NIC. Best effort:
 * without CAP_NET_ADMIN (or outside a slot) the guest is simply not reachable
 * that way. Returns why it could not, or undefined.
 */
export function holdGuestAddress(cmdline: string): string | undefined {
  const address = guestAddressFromCmdline(cmdline);
  if (address === undefined) return undefined;
  const r = spawnSync("ip", ["addr", "replace", `${address}/32`, "dev", "lo"], {
    encoding: "utf8",
    timeout: 5000,
  });
  return r.status === 0
    ? undefined
    : `ip addr replace ${address}/32 dev lo: ${r.stderr || r.error}`;
}

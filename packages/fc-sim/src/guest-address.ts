import { execFile } from "node:child_process";

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
 * put on `lo` there, as a real guest holds it on its NIC. Best effort and in
 * the background (fc-sim's API never waits for it): without CAP_NET_ADMIN, or
 * outside a slot, the guest is simply not reachable that way; `onError` says why.
 */
export function holdGuestAddress(cmdline: string, onError: (why: string) => void): void {
  const address = guestAddressFromCmdline(cmdline);
  if (address === undefined) return;
  execFile(
    "ip",
    ["addr", "replace", `${address}/32`, "dev", "lo"],
    { timeout: 10_000 },
    (err, _stdout, stderr) => {
      if (err) onError(`ip addr replace ${address}/32 dev lo: ${stderr || err.message}`);
    },
  );
}

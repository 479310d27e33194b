import { describe, expect, it } from "vitest";
import { diskGuestBlocker, type HostProbe, hostnameFromCmdline } from "./guest-disk.js";

const able: HostProbe = { uid: 0, loopControl: true, missingTools: [] };

describe("diskGuestBlocker", () => {
  it.each<[string, Partial<HostProbe>, string | undefined, string | undefined]>([
    ["root with loop devices and tools", {}, undefined, undefined],
    ["FC_SIM_GUEST=auto", {}, "auto", undefined],
    ["FC_SIM_GUEST=host", {}, "host", "FC_SIM_GUEST=host"],
    ["an unknown FC_SIM_GUEST", {}, "disk", "FC_SIM_GUEST=disk is not one of auto, host"],
    ["not root", { uid: 1000 }, undefined, "not root (euid 1000)"],
    ["no loop driver", { loopControl: false }, undefined, "/dev/loop-control is missing"],
    ["missing tools", { missingTools: ["fsfreeze"] }, undefined, "missing host tools: fsfreeze"],
  ])("%s", (_name, probe, mode, reason) => {
    const got = diskGuestBlocker({ ...able, ...probe }, mode);
    if (reason === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(reason);
  });
});

describe("hostnameFromCmdline", () => {
  it.each([
    ["reboot=k vmm.hostname=box-1 rw", "box-1"],
    ["reboot=k", "sandbox"],
    [`vmm.hostname=${"x".repeat(65)}`, "sandbox"],
  ])("%s → %s", (cmdline, name) => expect(hostnameFromCmdline(cmdline)).toBe(name));
});

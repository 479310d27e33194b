import { describe, expect, it } from "vitest";
import { guestAddressFromCmdline } from "./guest-address.js";

describe("guestAddressFromCmdline", () => {
  it("takes the client address of the kernel ip= argument", () => {
    expect(
      guestAddressFromCmdline(
        "console=ttyS0 ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off:1.1.1.1 vmm.agent_port=1024",
      ),
    ).toBe("172.16.0.2");
  });

  it("is undefined without one (network none) or with a non-address ip= (ip=dhcp)", () => {
    expect(guestAddressFromCmdline("console=ttyS0 reboot=k")).toBeUndefined();
    expect(guestAddressFromCmdline("ip=dhcp")).toBeUndefined();
    expect(guestAddressFromCmdline("vmm.ip=10.0.0.1:x")).toBeUndefined();
  });
});

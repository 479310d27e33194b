import { describe, expect, it } from "vitest";
import { UsageError } from "../errors.js";
import { parseFlags } from "../flags.js";
import { policyFlags, policyFromFlags, portText } from "./network.js";

const policyOf = (...argv: string[]) => policyFromFlags(parseFlags(policyFlags, argv).values);

describe("policyFromFlags", () => {
  it("gives no policy without flags (the daemon's default applies)", () => {
    expect(policyOf()).toBeUndefined();
  });

  it("keeps the internet unless --internet=false; lists repeat", () => {
    const deny = policyOf("--deny-out", "10.0.0.0/8");
    expect([deny?.internet, deny?.allowOut, deny?.denyOut]).toEqual([true, [], ["10.0.0.0/8"]]);
    const off = policyOf(
      "--internet=false",
      "--allow-out",
      "10.1.0.0/16",
      "--allow-out",
      "pypi.org",
    );
    expect([off?.internet, off?.allowOut]).toEqual([false, ["10.1.0.0/16", "pypi.org"]]);
    expect(policyOf("--internet", "no")?.internet).toBe(false);
  });

  it("rejects a value that is not a boolean", () => {
    expect(() => policyOf("--internet=maybe")).toThrow(UsageError);
  });
});

describe("portText", () => {
  it("prints the host address, and the proxy URL on a second line when there is one", () => {
    expect(portText({ hostAddress: "127.0.0.1:40001", url: "" })).toBe("127.0.0.1:40001\n");
    expect(
      portText({
        hostAddress: "127.0.0.1:40001",
        url: "http://8080-sb-1.sb.test:8088/?vmm_access_token=t",
      }),
    ).toBe("127.0.0.1:40001\nhttp://8080-sb-1.sb.test:8088/?vmm_access_token=t\n");
  });
});

import { create } from "@bufbuild/protobuf";
import { SandboxInfoSchema } from "@vmm/proto";
import { describe, expect, it } from "vitest";
import { sandboxInfoFields } from "./inspect.js";

describe("sandboxInfoFields", () => {
  const field = (info: Parameters<typeof create<typeof SandboxInfoSchema>>[1], name: string) =>
    sandboxInfoFields(create(SandboxInfoSchema, info)).find(([k]) => k === name)?.[1];

  it("shows the egress policy in one line, empty for the default", () => {
    expect(field({ id: "a" }, "Egress")).toBe("");
    expect(
      field(
        {
          id: "a",
          networkPolicy: { internet: false, allowOut: ["10.0.0.0/8", "pypi.org"], denyOut: [] },
        },
        "Egress",
      ),
    ).toBe("internet off; allow 10.0.0.0/8 pypi.org");
    expect(
      field({ id: "a", networkPolicy: { internet: true, denyOut: ["1.2.3.4/32"] } }, "Egress"),
    ).toBe("internet on; deny 1.2.3.4/32");
  });

  it("lists exposed ports as guest port → host address", () => {
    expect(field({ id: "a" }, "Ports")).toBe("");
    expect(
      field(
        {
          id: "a",
          exposedPorts: [
            { guestPort: 8080, hostAddress: "127.0.0.1:40001" },
            { guestPort: 22, hostAddress: "127.0.0.1:40002" },
          ],
        },
        "Ports",
      ),
    ).toBe("8080 → 127.0.0.1:40001, 22 → 127.0.0.1:40002");
  });
});

import { describe, expect, it } from "vitest";
import { parseCLI } from "../cli.js";
import type { CommandContext } from "../command.js";
import { UsageError } from "../errors.js";

/** Runs `vmm <argv>` against a fake SandboxService; returns the Create request it sent. */
async function createRequest(argv: string[]): Promise<Record<string, unknown>> {
  const p = parseCLI(argv);
  if (p.kind !== "command") throw new Error("expected a command");
  let sent: Record<string, unknown> | undefined;
  const ctx = {
    signal: new AbortController().signal,
    clients: () => ({
      sandbox: {
        create: async (req: Record<string, unknown>) => {
          sent = req;
          return { id: "sb-1", ipAddress: "", state: "starting" };
        },
      },
    }),
  } as unknown as CommandContext;
  const out = await p.command.handler(ctx, p.args as never);
  expect(out.stdout).toBe("sb-1\n");
  if (!sent) throw new Error("no Create sent");
  return sent;
}

describe("vmm create --image", () => {
  it("sends the image reference; --env/--workdir/--user may apply to the image's command", async () => {
    const req = await createRequest([
      "create",
      "--image",
      "docker.io/library/busybox:1.36",
      "--env",
      "A=1",
    ]);
    expect(req).toMatchObject({
      image: "docker.io/library/busybox:1.36",
      rootfs: "",
      cmd: [],
      env: { A: "1" },
    });
  });
  it("refuses --image with --rootfs, and --env without a command when there is no image", async () => {
    await expect(createRequest(["create", "--image", "x", "--rootfs", "r.ext4"])).rejects.toThrow(
      UsageError,
    );
    await expect(createRequest(["create", "--env", "A=1"])).rejects.toThrow(
      /apply to the initial workload/,
    );
  });
});

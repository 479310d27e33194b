import { describe, expect, it } from "vitest";
import { CommandFailedError, formatCommand, inNetns, ipArgv } from "./command-runner.js";
import { createDryRunCommandRunner } from "./command-runner-dry-run.js";
import { createExecCommandRunner } from "./command-runner-exec.js";

describe("formatCommand", () => {
  it("quotes what a shell would split and shows stdin as a here-document", () => {
    expect(formatCommand({ argv: ["echo", "a b", "it's", "x=1"] })).toBe(
      `echo 'a b' 'it'\\''s' x=1`,
    );
    expect(formatCommand({ argv: ipArgv("ns1", "-batch", "-"), stdin: "link set lo up" })).toBe(
      "ip -n ns1 -batch - <<'EOF'\nlink set lo up\nEOF",
    );
    expect(inNetns("ns1", ["nft", "-f", "-"])).toEqual([
      "ip",
      "netns",
      "exec",
      "ns1",
      "nft",
      "-f",
      "-",
    ]);
    expect(inNetns(undefined, ["nft", "-f", "-"])).toEqual(["nft", "-f", "-"]);
  });
});

describe("createExecCommandRunner", () => {
  const runner = createExecCommandRunner({ timeoutMs: 2000 });

  it("runs without a shell and feeds stdin", async () => {
    expect((await runner.run({ argv: ["cat"], stdin: "hello $HOME" })).stdout).toBe("hello $HOME");
  });

  it("reports the command, status and stderr on failure", async () => {
    const err = await runner
      .run({ argv: ["ip", "link", "show", "no-such-device-x"] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).exitCode).toBe(1);
    expect((err as Error).message).toMatch(
      /^network command ip link show no-such-device-x exited with 1: .*no-such-device-x/,
    );
  });

  it("kills a command that overruns its timeout", async () => {
    const quick = createExecCommandRunner({ timeoutMs: 100 });
    const started = performance.now();
    await expect(quick.run({ argv: ["sleep", "5"] })).rejects.toThrow(/killed after 100 ms/);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("createDryRunCommandRunner", () => {
  it("prints changes, records everything, runs nothing", async () => {
    const printed: string[] = [];
    const dry = createDryRunCommandRunner({ print: (t) => printed.push(t) });
    const result = await dry.run({ argv: ["sh", "-c", "exit 1"] });
    expect(result).toEqual({ stdout: "", stderr: "" });
    await dry.run({ argv: ["ip", "-j", "netns", "list"], readOnly: true });
    expect(printed).toEqual(["sh -c 'exit 1'"]);
    expect(dry.commands).toHaveLength(2);
  });
});

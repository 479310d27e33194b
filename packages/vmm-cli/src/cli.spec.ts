import { describe, expect, it } from "vitest";
import { parseCLI } from "./cli.js";
import { clientVersion } from "./commands/version.js";
import { UsageError } from "./errors.js";

function command(argv: string[]) {
  const p = parseCLI(argv);
  if (p.kind !== "command") throw new Error(`expected a command, got help`);
  return p;
}

describe("parseCLI", () => {
  it("finds commands, aliases and snapshot subcommands", () => {
    expect(command(["rm", "x"]).command.names[0]).toBe("remove");
    expect(command(["snapshot", "ls"]).command.names[0]).toBe("snapshot list");
    expect(command(["snapshot", "rm", "s"]).command.names[0]).toBe("snapshot delete");
  });
  it("accepts global flags before and after the command", () => {
    const p = command(["--socket", "/s.sock", "list", "--token", "t", "-o", "json"]);
    expect(p.connection).toMatchObject({ socket: "/s.sock", token: "t" });
    expect(p.args.values.output).toBe("json");
    expect(command(["-o", "yaml", "list"]).args.values.output).toBe("yaml");
  });
  it("takes the workload after --, or the extra positionals without it", () => {
    expect(command(["run", "-t", "id", "--", "ls", "-l"]).args).toMatchObject({
      positionals: ["id"],
      rest: ["ls", "-l"],
    });
    expect(command(["exec", "id", "sh"]).args).toMatchObject({ positionals: ["id"], rest: ["sh"] });
    expect(command(["create", "--wait", "--", "sleep", "1"]).args.rest).toEqual(["sleep", "1"]);
  });
  it.each([
    [["frobnicate"], /unknown command "frobnicate"/],
    [["inspect"], /inspect needs ID/],
    [["inspect", "a", "b"], /unexpected argument "b"/],
    [["run", "id"], /run needs a command/],
    [["run", "id", "ls", "-l"], /unknown option -l/],
    [["snapshot"], /snapshot needs a subcommand/],
    [["list", "--", "x"], /list takes no command after --/],
    [["--bogus"], /unknown option --bogus/],
  ])("%j is a usage error", (argv, message) => {
    expect(() => parseCLI(argv)).toThrow(UsageError);
    expect(() => parseCLI(argv)).toThrow(message);
  });
  it("returns help for --help, -h, help CMD and no arguments", () => {
    for (const argv of [
      [],
      ["--help"],
      ["list", "-h"],
      ["help", "snapshot", "create"],
      ["snapshot", "--help"],
    ]) {
      expect(parseCLI(argv).kind).toBe("help");
    }
  });
  it("prints the client's version for --version, without a daemon", () => {
    expect(parseCLI(["--version"])).toEqual({ kind: "help", text: `vmm ${clientVersion}\n` });
    expect(clientVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(() => parseCLI(["--version", "--bogus"])).toThrow(UsageError);
  });
  it("does not take -h after -- as help", () => {
    expect(command(["run", "id", "--", "ls", "-h"]).args.rest).toEqual(["ls", "-h"]);
  });
});

import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CommandError, NotFoundError, SandboxFailedError, UsageError } from "./errors.js";
import { describeError, ExitCode, grpcCodeName } from "./exit-codes.js";

const enoent = Object.assign(new Error("connect ENOENT /x.sock"), { code: "ENOENT" });

describe("describeError", () => {
  it.each([
    ["UsageError", new UsageError("bad"), 2, 125, "vmm: usage: bad"],
    [
      "NotFoundError",
      new NotFoundError('no sandbox matches "x"'),
      3,
      125,
      'vmm: NOT_FOUND: no sandbox matches "x"',
    ],
    ["SandboxFailedError", new SandboxFailedError("boom"), 1, 1, "vmm: FAILED: boom"],
    ["CommandError", new CommandError("eh"), 1, 125, "vmm: error: eh"],
    [
      "INVALID_ARGUMENT",
      new ConnectError("state: bad", Code.InvalidArgument),
      2,
      125,
      "vmm: INVALID_ARGUMENT: state: bad",
    ],
    [
      "NOT_FOUND",
      new ConnectError("sandbox x not found", Code.NotFound),
      3,
      125,
      "vmm: NOT_FOUND: sandbox x not found",
    ],
    [
      "UNAVAILABLE",
      new ConnectError("shutting down", Code.Unavailable),
      4,
      125,
      "vmm: UNAVAILABLE: shutting down",
    ],
    [
      "ENOENT in the cause chain",
      new ConnectError("oops", Code.Internal, undefined, undefined, enoent),
      4,
      125,
      "vmm: UNAVAILABLE: cannot connect to socket /x.sock: no such file",
    ],
    [
      "DEADLINE_EXCEEDED",
      new ConnectError("timed out", Code.DeadlineExceeded),
      1,
      124,
      "vmm: DEADLINE_EXCEEDED: timed out",
    ],
    ["CANCELED", new ConnectError("aborted", Code.Canceled), 130, 130, "vmm: CANCELED: aborted"],
    [
      "ALREADY_EXISTS",
      new ConnectError("dup", Code.AlreadyExists),
      1,
      125,
      "vmm: ALREADY_EXISTS: dup",
    ],
    [
      "FAILED_PRECONDITION",
      new ConnectError("busy", Code.FailedPrecondition),
      1,
      125,
      "vmm: FAILED_PRECONDITION: busy",
    ],
    [
      "RESOURCE_EXHAUSTED",
      new ConnectError("no IPs", Code.ResourceExhausted),
      1,
      125,
      "vmm: RESOURCE_EXHAUSTED: no IPs",
    ],
    ["INTERNAL", new ConnectError("bug", Code.Internal), 1, 125, "vmm: INTERNAL: bug"],
    ["a plain Error", new Error("weird"), 1, 125, "vmm: UNKNOWN: weird"],
  ])("%s → exit %i (run/exec %i)", (_name, err, code, runCode, line) => {
    const plain = describeError(err, { command: "list", socket: "/x.sock" });
    expect(plain.exitCode).toBe(code);
    expect(plain.lines[0]).toBe(line);
    expect(
      describeError(err, { command: "run", commandStatus: true, socket: "/x.sock" }).exitCode,
    ).toBe(runCode);
  });
  it("hints: daemon not running, --force, token", () => {
    expect(describeError(enoent, { socket: "/x.sock" }).lines[1]).toMatch(
      /is the daemon running\? start it with `pnpm start`/,
    );
    expect(
      describeError(new ConnectError("busy", Code.FailedPrecondition), { command: "rm" }).lines[1],
    ).toMatch(/--force/);
    expect(describeError(new ConnectError("who", Code.Unauthenticated)).lines[1]).toMatch(
      /VMM_TOKEN/,
    );
    expect(describeError(new UsageError("bad"), { command: "create" }).lines[1]).toBe(
      "see 'vmm create --help'",
    );
  });
  it("names codes as gRPC does", () => {
    expect(grpcCodeName(Code.FailedPrecondition)).toBe("FAILED_PRECONDITION");
    expect(grpcCodeName(Code.NotFound)).toBe("NOT_FOUND");
    expect(ExitCode.runFailed).toBe(125);
  });
});

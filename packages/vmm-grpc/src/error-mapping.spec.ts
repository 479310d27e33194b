import { Code, ConnectError } from "@connectrpc/connect";
import {
  AlreadyExistsError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
} from "@vmm/core";
import { describe, expect, it } from "vitest";
import { toConnectError } from "./error-mapping.js";

describe("toConnectError", () => {
  it.each([
    [new NotFoundError("sandbox", "a"), Code.NotFound, 'sandbox "a" not found'],
    [new AlreadyExistsError("dup"), Code.AlreadyExists, "dup"],
    [new FailedPreconditionError("state"), Code.FailedPrecondition, "state"],
    [
      new InvalidArgumentError("limits.vcpus", "too many"),
      Code.InvalidArgument,
      "limits.vcpus: too many",
    ],
    [new ResourceExhaustedError("ips"), Code.ResourceExhausted, "ips"],
    [new DeadlineExceededError("boot"), Code.DeadlineExceeded, "boot"],
    [new UnavailableError("shutdown"), Code.Unavailable, "shutdown"],
    [new UnimplementedError("image"), Code.Unimplemented, "image"],
    [new PermissionDeniedError("registry"), Code.PermissionDenied, "registry"],
    [new DataLossError("blob"), Code.DataLoss, "blob"],
  ])("maps %o to its code and keeps the message", (err, code, message) => {
    const mapped = toConnectError(err);
    expect(mapped.code).toBe(code);
    expect(mapped.rawMessage).toBe(message);
    expect(mapped.cause).toBe(err);
  });

  it("passes ConnectErrors through", () => {
    const err = new ConnectError("x", Code.PermissionDenied);
    expect(toConnectError(err)).toBe(err);
  });

  it("turns aborts into Canceled", () => {
    expect(toConnectError(new DOMException("aborted", "AbortError")).code).toBe(Code.Canceled);
  });

  it("hides unknown errors behind Internal without leaking their text", () => {
    const bug = new TypeError("secret stack detail");
    const mapped = toConnectError(bug);
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.message).not.toContain("secret");
    expect(mapped.cause).toBe(bug);
  });
});

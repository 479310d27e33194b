import { describe, expect, it } from "vitest";
import { parseImageReference } from "./image-reference.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseImageReference", () => {
  it.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/library/busybox:1", "docker.io/library/busybox:1"],
    ["user/app", "docker.io/user/app:latest"],
    ["ghcr.io/org/app:v1.2", "ghcr.io/org/app:v1.2"],
    ["127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v1"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"],
    [`app@${D}`, `docker.io/library/app@${D}`],
    [`quay.io/a/b:t@${D}`, `quay.io/a/b:t@${D}`],
    ["my.reg/a_b/c__d/e-f.g:T_1.0-x", "my.reg/a_b/c__d/e-f.g:T_1.0-x"],
  ])("%s → %s", (input, normalized) => {
    expect(parseImageReference(input).normalized).toBe(normalized);
  });

  it("splits the parts", () => {
    expect(parseImageReference(`127.0.0.1:5000/x/y:t@${D}`)).toEqual({
      registry: "127.0.0.1:5000",
      repository: "x/y",
      tag: "t",
      digest: D,
      normalized: `127.0.0.1:5000/x/y:t@${D}`,
    });
  });

  it.each([
    ["", "empty"],
    ["Busybox", "path component"],
    ["busybox:", "tag"],
    ["busybox:-x", "tag"],
    ["busybox@sha256:abc", "digest"],
    [`busybox@md5:${"a".repeat(32)}`, "digest"],
    ["a//b", "path component"],
    ["a/b/", "path component"],
    ["has space", "whitespace"],
    ["host:5000/", "path component"],
    ["-a", "path component"],
    [`x/${"a".repeat(300)}`, "longer"],
  ])("%j is INVALID_ARGUMENT (%s)", (input, why) => {
    expect(() => parseImageReference(input)).toThrow(
      expect.objectContaining({ kind: "invalid_argument", message: expect.stringContaining(why) }),
    );
  });
});

import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sha256File } from "./sha256-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmm-sha-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("sha256File", () => {
  it.each([0, 1, 5 << 20])("matches crypto for %d bytes", async (n) => {
    const data = randomBytes(n);
    await writeFile(join(dir, "f"), data);
    expect(await sha256File(join(dir, "f"))).toEqual({
      size: n,
      sha256: createHash("sha256").update(data).digest("hex"),
    });
  });
  it.each(["-rf", "a b", "back\\slash", "new\nline"])("handles the file name %j", async (name) => {
    await writeFile(join(dir, name), "content");
    expect((await sha256File(join(dir, name))).sha256).toBe(
      createHash("sha256").update("content").digest("hex"),
    );
  });
  it("leaves no memory behind in the calling process (hashing runs in a child)", async () => {
    const data = randomBytes(32 << 20);
    await writeFile(join(dir, "f"), data);
    const before = process.memoryUsage().rss;
    await Promise.all([1, 2, 3].map(() => sha256File(join(dir, "f"))));
    // A worker thread or in-process stream would add its buffers; a child adds nothing here.
    expect(process.memoryUsage().rss - before).toBeLessThan(16 << 20);
  });
  it("rejects with the errno code for a missing file", async () => {
    await expect(sha256File(join(dir, "nope"))).rejects.toMatchObject({ code: "ENOENT" });
  });
  it("honours an aborted signal", async () => {
    await writeFile(join(dir, "f"), "x");
    await expect(sha256File(join(dir, "f"), AbortSignal.abort(new Error("stop")))).rejects.toThrow(
      "stop",
    );
  });
});

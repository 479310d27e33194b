import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readJsonFile, writeFileAtomic } from "./atomic-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmm-atomic-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeFileAtomic", () => {
  it("creates, then replaces, leaving no temp file", async () => {
    const p = join(dir, "rec.json");
    await writeFileAtomic(p, '{"a":1}');
    await writeFileAtomic(p, Buffer.from('{"a":2}'), { mode: 0o600 });
    expect(await readFile(p, "utf8")).toBe('{"a":2}');
    expect(await readdir(dir)).toEqual(["rec.json"]);
  });

  it("fails without leaving a temp file when the target is a directory", async () => {
    await mkdir(join(dir, "sub", "inner"), { recursive: true });
    await expect(writeFileAtomic(join(dir, "sub"), "x")).rejects.toThrow();
    expect(await readdir(dir)).toEqual(["sub"]);
  });
});

describe("readJsonFile", () => {
  it("parses", async () => {
    await writeFile(join(dir, "a.json"), '{"x":[1]}');
    expect(await readJsonFile(join(dir, "a.json"))).toEqual({ x: [1] });
  });
  it("passes ENOENT through", async () => {
    await expect(readJsonFile(join(dir, "nope.json"))).rejects.toMatchObject({ code: "ENOENT" });
  });
  it("names the file on a parse error", async () => {
    await writeFile(join(dir, "bad.json"), '{"x":');
    await expect(readJsonFile(join(dir, "bad.json"))).rejects.toThrow(
      /bad\.json is not valid JSON/,
    );
  });
});

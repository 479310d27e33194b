import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createConsoleCapture } from "./console-capture.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("createConsoleCapture", () => {
  it("never lets the file exceed maxBytes and keeps the newest output", async () => {
    dir = mkdtempSync("/tmp/fcc-");
    const path = join(dir, "console.log");
    const cap = createConsoleCapture(path, 1000);
    const out = new PassThrough();
    const err = new PassThrough();
    cap.attach(out);
    cap.attach(err);
    for (let i = 0; i < 500; i++) (i % 2 ? out : err).write(`line ${i}\n`);
    await new Promise((r) => setImmediate(r));
    expect(statSync(path).size).toBeLessThanOrEqual(1000);
    const text = readFileSync(path, "utf8");
    expect(text).toMatch(/^\[console log truncated \d+x at 1000 bytes\]\n/);
    expect(text).toContain("line 499\n");
    expect(cap.tail()).toContain("line 499");
    out.write(Buffer.alloc(5000, "x"));
    await new Promise((r) => setImmediate(r));
    expect(statSync(path).size).toBeLessThanOrEqual(1000);
    cap.close();
  });

  it("without a file keeps only an 8 KiB tail in memory", async () => {
    const cap = createConsoleCapture(undefined, 0);
    const out = new PassThrough();
    cap.attach(out);
    out.write(Buffer.alloc(20_000, "a"));
    out.write("end");
    await new Promise((r) => setImmediate(r));
    expect(cap.tail().length).toBe(8192);
    expect(cap.tail().endsWith("end")).toBe(true);
    cap.close();
  });

  it("after forgetTail keeps writing the file but no tail", async () => {
    dir = mkdtempSync("/tmp/fcc-");
    const path = join(dir, "console.log");
    const cap = createConsoleCapture(path, 1000);
    const out = new PassThrough();
    cap.attach(out);
    out.write("booting\n");
    await new Promise((r) => setImmediate(r));
    expect(cap.tail()).toBe("booting\n");
    cap.forgetTail();
    out.write("ready\n");
    await new Promise((r) => setImmediate(r));
    expect(cap.tail()).toBe("");
    expect(readFileSync(path, "utf8")).toBe("booting\nready\n");
    cap.close();
  });
});

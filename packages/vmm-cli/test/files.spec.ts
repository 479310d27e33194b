import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runVmm, startVmm, until } from "./harness.js";
import { type InProcessDaemon, startInProcessDaemon } from "./in-process-daemon.js";

// vmm cp / ls / watch against the real SandboxFilesService in this process. The guest here is
// fc-sim's host-process guest (in-process-daemon.ts), so guest paths are this test's scratch
// directory on the host; vmm-daemon's files.spec.ts covers the same calls in a disk guest.
describe("vmm cp, ls, watch (in-process daemon, fc-sim)", () => {
  let d: InProcessDaemon;
  const id = "files-cli-01";
  const vmm = (args: string[], opts: Parameters<typeof runVmm>[1] = {}) =>
    runVmm(args, { socket: d.socket, ...opts });

  beforeAll(async () => {
    d = await startInProcessDaemon();
    await d.sandboxes.create({ id });
    await d.waitForState(id, "ready");
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("cp a local file in and back out, byte for byte (id prefix, mode, -p)", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const local = join(d.scratch, "local.bin");
    writeFileSync(local, data);
    const guest = join(d.scratch, "g/sub/in.bin");
    const up = await vmm(["cp", "--mode", "600", "-p", local, `files-cli:${guest}`]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toBe(`${data.length} bytes → ${id}:${guest}\n`);
    expect(readFileSync(guest).equals(data)).toBe(true);

    const back = join(d.scratch, "back.bin");
    const down = await vmm(["cp", `${id}:${guest}`, back]);
    expect(down.code, down.stderr).toBe(0);
    expect(readFileSync(back).equals(data)).toBe(true);
    expect(readdirSync(d.scratch).filter((n) => n.includes("vmm-cp"))).toEqual([]);
  });

  it("cp - reads stdin, and cp ID:PATH - writes stdout", async () => {
    const guest = join(d.scratch, "stdin.txt");
    const up = await vmm(["cp", "-", `${id}:${guest}`], { input: "from stdin\n" });
    expect(up.code, up.stderr).toBe(0);
    expect(readFileSync(guest, "utf8")).toBe("from stdin\n");
    const down = await vmm(["cp", `${id}:${guest}`, "-"]);
    expect(down).toMatchObject({ code: 0, out: "from stdin\n" });
  });

  it("cp errors: missing file (3), a directory (1), relative guest path and two local paths (2)", async () => {
    const missing = await vmm(["cp", `${id}:${join(d.scratch, "nope")}`, "-"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/No such file or directory/);
    const dir = await vmm(["cp", `${id}:${d.scratch}`, "-"]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/Is a directory/);
    expect((await vmm(["cp", "-", `${id}:relative`])).code).toBe(2);
    expect((await vmm(["cp", "./a", "./b"])).code).toBe(2);
    // A failed download leaves no local file, not even a partial one.
    expect(existsSync(join(d.scratch, "never"))).toBe(false);
    expect(
      (await vmm(["cp", `${id}:${join(d.scratch, "nope")}`, join(d.scratch, "never")])).code,
    ).toBe(3);
    expect(readdirSync(d.scratch).filter((n) => n.includes("never"))).toEqual([]);
  });

  it("ls lists a directory; -R the tree; -o json", async () => {
    const root = join(d.scratch, "tree");
    mkdirSync(join(root, "a/b"), { recursive: true });
    writeFileSync(join(root, "a/b/f.txt"), "12345");
    writeFileSync(join(root, "top.txt"), "x");
    const one = await vmm(["ls", `${id}:${root}`]);
    expect(one.code, one.stderr).toBe(0);
    const lines = one.out.trim().split("\n");
    expect(lines[0]).toMatch(/^MODE\s+SIZE\s+MODIFIED\s+NAME$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).at(-1))).toEqual(["a", "top.txt"]);
    expect(lines[1]).toMatch(/^drwx/);
    const all = await vmm(["ls", "-R", `${id}:${root}`]);
    expect(all.out).toContain(`${root}/a/b/f.txt`);
    const json = await vmm(["ls", "-o", "json", "--depth", "3", `${id}:${root}`]);
    const entries = json.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { path: string; size: string; type: string });
    expect(entries.find((e) => e.path.endsWith("f.txt"))).toMatchObject({
      size: "5",
      type: "file",
    });
    expect((await vmm(["ls", `${id}:${join(root, "nope")}`])).code).toBe(3);
  });

  it("watch prints changes until SIGINT, then exits 0", async () => {
    const dir = join(d.scratch, "watched");
    mkdirSync(dir);
    const p = startVmm(["watch", "-r", `${id}:${dir}`], { socket: d.socket, input: "keep" });
    let out = "";
    p.child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    // Until the watch is in place, a new file may go unseen: write until one is reported.
    for (let i = 0; !out.includes("create") && i < 100; i++) {
      writeFileSync(join(dir, `f${i}`), "x");
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(() => /create\s+\S*\/watched\/f\d+/.test(out), "a create line");
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.code).toBe(0);
  });
});

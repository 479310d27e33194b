import { randomBytes } from "node:crypto";
import {
  copyFile,
  link,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../../src/errors.js";
import type { Logger } from "../../src/internal/index.js";
import { SnapshotCatalog, type SnapshotSpec } from "../../src/snapshot/index.js";
import { SandboxDir } from "../../src/storage/index.js";

let dataDir: string;
const catalogs: SnapshotCatalog[] = [];
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vmm-snap-"));
});
afterEach(async () => {
  await Promise.all(catalogs.splice(0).map((c) => c.close()));
  await rm(dataDir, { recursive: true, force: true });
});

function recorder(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const log: Logger & { warnings: string[] } = {
    warnings,
    info() {},
    error() {},
    debug() {},
    child: () => log,
    warn: (o, m) => warnings.push(`${m} ${JSON.stringify(o)}`),
  };
  return log;
}

async function openCatalog(
  firecrackerVersion = "1.14.2",
  logger?: Logger,
): Promise<SnapshotCatalog> {
  const c = await SnapshotCatalog.open({
    dataDir,
    firecrackerVersion,
    logger,
    verifyInBackground: false,
  });
  catalogs.push(c);
  return c;
}

function spec(over: Partial<SnapshotSpec> = {}): SnapshotSpec {
  const identity = { size: 1, mtimeMs: 2, ino: 3 };
  return {
    name: "snap",
    originSandboxId: "sb-1",
    labels: { team: "a" },
    kernel: { path: "/img/vmlinux", identity },
    rootfsBase: { path: "/img/base.ext4", identity },
    bootArgs: "console=ttyS0",
    vcpus: 2,
    memoryMib: 128,
    networkMode: "isolated",
    guestNetwork: { guestIp: "172.16.0.2", guestMac: "06:00:ac:10:00:02", tapName: "tap0" },
    ...over,
  };
}

/** Commits a snapshot with small random files, written as Firecracker would (directly in the temp dir). */
async function makeSnapshot(c: SnapshotCatalog, over: Partial<SnapshotSpec> = {}) {
  await using p = await c.beginSnapshot(spec(over));
  await writeFile(p.paths.vmstate, randomBytes(3000));
  await writeFile(p.paths.mem, randomBytes(1 << 20));
  const disk = join(dataDir, `disk-${p.id}`);
  await writeFile(disk, randomBytes(64 << 10));
  await p.addRootfs(disk, "auto");
  return p.commit();
}

describe("commit and abort", () => {
  it("commit makes the entry appear with sizes and checksums; reopen loads it", async () => {
    const c = await openCatalog();
    const meta = await makeSnapshot(c, { id: "snap-one" });
    expect(meta).toMatchObject({
      formatVersion: 1,
      id: "snap-one",
      firecrackerVersion: "1.14.2",
      hidden: false,
      files: { vmstate: { size: 3000 }, mem: { size: 1 << 20 }, rootfs: { size: 64 << 10 } },
    });
    expect(meta.files.mem.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(meta.createdAt)).not.toBeNaN();
    expect((await readdir(c.dir)).sort()).toEqual(["snap-one"]);
    expect((await readdir(join(c.dir, "snap-one"))).sort()).toEqual([
      "mem",
      "meta.json",
      "rootfs.ext4",
      "vmstate",
    ]);
    expect(JSON.parse(await readFile(join(c.dir, "snap-one", "meta.json"), "utf8"))).toEqual(meta);
    expect(c.get("snap-one").state).toBe("usable");
    expect(await c.verify("snap-one")).toEqual({ ok: true });

    const c2 = await openCatalog("v1.14.2");
    expect((await c2.usableOrThrow("snap-one")).meta).toEqual(meta);
    expect(c2.openReport).toEqual({ removedLeftovers: [], unusable: [], ignored: [] });
  });

  it("a pending snapshot is invisible, aborted on dispose, and commit needs every file", async () => {
    const c = await openCatalog();
    let tmp = "";
    {
      await using p = await c.beginSnapshot(spec({ id: "snap-two" }));
      tmp = p.dir;
      expect(p.dir).toBe(join(c.dir, ".tmp-snap-two"));
      expect(c.list()).toEqual([]);
      await expect(c.beginSnapshot(spec({ id: "snap-two" }))).rejects.toBeInstanceOf(
        AlreadyExistsError,
      );
      await writeFile(p.paths.vmstate, "v");
      const err = await p.commit().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect((err as Error).message).toMatch(/mem is missing/);
      expect(p.state).toBe("open");
    }
    await expect(stat(tmp)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readdir(c.dir)).toEqual([]);
    // The id is free again.
    const p = await c.beginSnapshot(spec({ id: "snap-two" }));
    await p.abort();
    await p.abort();
    await expect(p.commit()).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it("adoptFile renames files Firecracker wrote into the sandbox dir; relative paths from a sandbox dir", async () => {
    const c = await openCatalog();
    const sb = await SandboxDir.create(dataDir, "sb-1");
    await using p = await c.beginSnapshot(spec());
    expect(await p.relativePathsFrom(sb.path)).toEqual({
      vmstate: `../../snapshots/.tmp-${p.id}/vmstate`,
      mem: `../../snapshots/.tmp-${p.id}/mem`,
    });
    await writeFile(join(sb.path, "vmstate.new"), "state");
    await writeFile(join(sb.path, "mem.new"), "memory");
    await writeFile(sb.absolute.rootfs, "disk");
    expect(await p.adoptFile(join(sb.path, "vmstate.new"), "vmstate")).toBe("rename");
    expect(await p.adoptFile(join(sb.path, "mem.new"), "mem")).toBe("rename");
    await p.addRootfs(sb.absolute.rootfs, "copy");
    const meta = await p.commit();
    expect(meta.files.vmstate.size).toBe(5);
    expect(await readFile(join(c.dir, meta.id, "mem"), "utf8")).toBe("memory");
  });
});

describe("crash recovery at open", () => {
  it("removes .tmp and .deleting leftovers, keeps half-written entries as unusable", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "good" });
    const dir = c.dir;
    // Crash during a snapshot: temp dir with files and a half-written meta.
    await mkdir(join(dir, ".tmp-crashed"));
    await writeFile(join(dir, ".tmp-crashed", "mem"), "m");
    await writeFile(join(dir, ".tmp-crashed", "meta.json"), '{"formatVersion":1,"id":');
    // Crash during a delete.
    await mkdir(join(dir, ".old.deleting-abc123"));
    // A dir that somehow lost its meta, one with a corrupt meta, a stray file.
    await mkdir(join(dir, "nometa"));
    await mkdir(join(dir, "corrupt"));
    await writeFile(join(dir, "corrupt", "meta.json"), '{"formatVersion":1,"id":"cor');
    await mkdir(join(dir, "badshape"));
    await writeFile(join(dir, "badshape", "meta.json"), '{"formatVersion":1,"id":"badshape"}');
    await writeFile(join(dir, "README"), "x");

    const log = recorder();
    const c2 = await openCatalog("1.14.2", log);
    expect(c2.openReport.removedLeftovers).toEqual([".old.deleting-abc123", ".tmp-crashed"]);
    expect(c2.openReport.ignored).toEqual(["README"]);
    expect(Object.fromEntries(c2.openReport.unusable.map((u) => [u.id, u.reason]))).toEqual({
      badshape: "meta.json is unreadable or corrupt: name: expected a string",
      corrupt: expect.stringMatching(/^meta.json is unreadable or corrupt: .*not valid JSON/),
      nometa: "meta.json is missing",
    });
    expect((await readdir(dir)).sort()).toEqual([
      "README",
      "badshape",
      "corrupt",
      "good",
      "nometa",
    ]);
    expect(c2.get("good").state).toBe("usable");
    await expect(c2.usableOrThrow("nometa")).rejects.toThrow(
      /snapshot nometa is unusable: meta.json is missing/,
    );
    expect(log.warnings.some((w) => w.includes(".tmp-crashed"))).toBe(true);
    // Unusable entries without meta show up only in unfiltered listings.
    expect(c2.list().map((e) => e.id)).toEqual(["badshape", "corrupt", "nometa", "good"]);
    expect(c2.list({ originSandboxId: "sb-1" }).map((e) => e.id)).toEqual(["good"]);
  });
});

describe("integrity", () => {
  it("a memory file of the wrong size is unusable at open", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "trunc" });
    await truncate(join(c.dir, "trunc", "mem"), 4096);
    const c2 = await openCatalog();
    const e = c2.get("trunc");
    expect(e.state === "unusable" && e.reason).toBe(
      `mem is 4096 bytes, meta.json says ${1 << 20} (truncated or replaced)`,
    );
    await expect(c2.usableOrThrow("trunc")).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it("a missing file is unusable at open; a size change after open is caught by usableOrThrow", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "gone" });
    await makeSnapshot(c, { id: "later" });
    await rm(join(c.dir, "gone", "rootfs.ext4"));
    const c2 = await openCatalog();
    expect(c2.openReport.unusable).toEqual([{ id: "gone", reason: "rootfs.ext4 is missing" }]);
    await writeFile(join(c.dir, "later", "vmstate"), "shorter");
    await expect(c2.usableOrThrow("later")).rejects.toThrow(
      /vmstate is 7 bytes, meta.json says 3000/,
    );
    expect(c2.get("later").state).toBe("unusable");
  });

  it("a flipped byte keeps the size: open accepts it, verify catches it", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "flip" });
    const fh = await open(join(c.dir, "flip", "mem"), "r+");
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 12345);
    b[0] = (b[0] ?? 0) ^ 0xff;
    await fh.write(b, 0, 1, 12345);
    await fh.close();
    const c2 = await openCatalog();
    expect(c2.get("flip").state).toBe("usable");
    const r = await c2.verify("flip");
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/^mem checksum mismatch/);
    await expect(c2.usableOrThrow("flip")).rejects.toThrow(/mem checksum mismatch/);
  });

  it("background verification at open catches a flipped byte", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "bg" });
    await writeFile(join(c.dir, "bg", "vmstate"), randomBytes(3000));
    const c2 = await SnapshotCatalog.open({ dataDir, firecrackerVersion: "1.14.2" });
    catalogs.push(c2);
    await c2.backgroundVerification();
    const e = c2.get("bg");
    expect(e.state === "unusable" && e.reason).toMatch(/^vmstate checksum mismatch/);
  });

  it("entries from another Firecracker version are unusable", async () => {
    const c = await openCatalog("1.13.1");
    await makeSnapshot(c, { id: "old" });
    const c2 = await openCatalog("1.14.2");
    await expect(c2.usableOrThrow("old")).rejects.toThrow(
      "snapshot old is unusable: snapshot taken by Firecracker v1.13.1; this daemon runs v1.14.2; snapshots are not portable across versions",
    );
  });
});

describe("queries", () => {
  it("filters by origin, labels (all must match) and hidden; get validates ids", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "a1", originSandboxId: "sb-a", labels: { env: "dev", team: "x" } });
    await makeSnapshot(c, { id: "a2", originSandboxId: "sb-a", labels: { env: "prod" } });
    await makeSnapshot(c, { id: "b1", originSandboxId: "sb-b", labels: { env: "dev" } });
    await makeSnapshot(c, { id: "g1", originSandboxId: "sb-g", hidden: true, goldenKey: "k1" });
    const ids = (f: Parameters<SnapshotCatalog["list"]>[0]) => c.list(f).map((e) => e.id);
    expect(ids({})).toEqual(["a1", "a2", "b1"]);
    expect(ids({ includeHidden: true })).toEqual(["a1", "a2", "b1", "g1"]);
    expect(ids({ originSandboxId: "sb-a" })).toEqual(["a1", "a2"]);
    expect(ids({ labels: { env: "dev" } })).toEqual(["a1", "b1"]);
    expect(ids({ labels: { env: "dev", team: "x" } })).toEqual(["a1"]);
    expect(ids({ originSandboxId: "sb-b", labels: { env: "prod" } })).toEqual([]);
    expect(c.findGolden("k1").map((e) => e.id)).toEqual(["g1"]);
    expect(c.findGolden("k2")).toEqual([]);
    expect(() => c.get("nope")).toThrow(NotFoundError);
    for (const bad of ["../a1", "a1/..", ".tmp-a1", "", "A1"]) {
      expect(() => c.get(bad)).toThrow(InvalidArgumentError);
    }
  });

  it.each([
    [{ name: "../x" }, "name"],
    [{ name: "a/b" }, "name"],
    [{ name: "" }, "name"],
    [{ id: "../evil" }, "snapshot_id"],
    [{ id: ".tmp-x" }, "snapshot_id"],
    [{ originSandboxId: "a/b" }, "sandbox_id"],
  ] as const)("beginSnapshot rejects %j (field %s) and creates nothing", async (over, field) => {
    const c = await openCatalog();
    const err = await c.beginSnapshot(spec(over)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    expect(await readdir(c.dir)).toEqual([]);
  });
});

describe("delete", () => {
  async function restoreInto(
    c: SnapshotCatalog,
    snapId: string,
    sandboxId: string,
    how: "link" | "copy" | "none",
  ) {
    const sb = await SandboxDir.create(dataDir, sandboxId);
    const mem = c.get(snapId).paths.mem;
    if (how === "link") await link(mem, sb.absolute.mem);
    if (how === "copy") await copyFile(mem, sb.absolute.mem);
    return sb;
  }

  it("is allowed when every running user has its own hard link (or clone), refused otherwise", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "s1" });
    const memSum = await readFile(c.get("s1").paths.mem);
    const linked = await restoreInto(c, "s1", "sb-linked", "link");
    await restoreInto(c, "s1", "sb-cloned", "copy");
    await restoreInto(c, "s1", "sb-direct", "none");

    const err = await c
      .delete("s1", { usersOf: () => ["sb-linked", "sb-cloned", "sb-direct"] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/in use: sandbox sb-direct runs from it/);
    expect(c.get("s1").state).toBe("usable");

    const r = await c.delete("s1", {
      usersOf: (id) => (id === "s1" ? ["sb-linked", "sb-cloned"] : []),
    });
    expect(r).toEqual({ memoryHeldBy: ["sb-linked"] });
    expect(() => c.get("s1")).toThrow(NotFoundError);
    expect(await readdir(c.dir)).toEqual([]);
    // The running sandbox's link still holds the memory content.
    expect((await readFile(linked.absolute.mem)).equals(memSum)).toBe(true);
    expect((await stat(linked.absolute.mem)).nlink).toBe(1);
    await expect(c.delete("s1", { usersOf: () => [] })).rejects.toBeInstanceOf(NotFoundError);
    // Gone after reopen too.
    expect((await openCatalog()).list({ includeHidden: true })).toEqual([]);
  });

  it("deletes unusable entries, and serializes concurrent operations on one id", async () => {
    const c = await openCatalog();
    await makeSnapshot(c, { id: "s2" });
    await mkdir(join(c.dir, "broken"));
    const c2 = await openCatalog();
    expect((await c2.delete("broken", { usersOf: () => [] })).memoryHeldBy).toEqual([]);
    const [v, d, d2] = await Promise.allSettled([
      c2.verify("s2"),
      c2.delete("s2", { usersOf: () => [] }),
      c2.delete("s2", { usersOf: () => [] }),
    ]);
    expect(v).toEqual({ status: "fulfilled", value: { ok: true } });
    expect(d.status).toBe("fulfilled");
    expect(d2.status === "rejected" && d2.reason).toBeInstanceOf(NotFoundError);
    expect(await readdir(c2.dir)).toEqual([]);
  });
});

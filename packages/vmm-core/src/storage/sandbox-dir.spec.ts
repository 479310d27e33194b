import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import {
  assertSocketPathsFit,
  longestSocketPathBytes,
  MAX_SOCKET_PATH_BYTES,
  maxSandboxIdLength,
  SandboxDir,
} from "./sandbox-dir.js";

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "vmm-sd-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("SandboxDir", () => {
  it("creates, opens, writes a record, lists and removes", async () => {
    const d = await SandboxDir.create(dataDir, "sb-1");
    expect(d.path).toBe(join(dataDir, "sandboxes", "sb-1"));
    expect(d.relative.apiSocket).toBe("api.sock");
    expect(d.relative.rootfs).toBe("rootfs.ext4");
    expect(d.absolute.vsockSocket).toBe(join(d.path, "vsock.sock"));
    expect(d.absolute.mem).toBe(join(d.path, "mem"));
    expect(d.vsockListenerPath(1024)).toBe(join(d.path, "vsock.sock_1024"));
    expect((await stat(d.path)).mode & 0o777).toBe(0o700);
    await d.writeRecord({ id: "sb-1", state: "ready" });
    expect(await (await SandboxDir.open(dataDir, "sb-1")).readRecord()).toEqual({
      id: "sb-1",
      state: "ready",
    });
    await expect(SandboxDir.create(dataDir, "sb-1")).rejects.toBeInstanceOf(AlreadyExistsError);

    await mkdir(join(dataDir, "sandboxes", ".sb-0.deleting-abcd"));
    await writeFile(join(dataDir, "sandboxes", "stray-file"), "");
    await mkdir(join(dataDir, "sandboxes", "Bad_Name"));
    expect(await SandboxDir.list(dataDir)).toEqual({
      ids: ["sb-1"],
      removedLeftovers: [".sb-0.deleting-abcd"],
    });

    expect(await d.remove()).toBe(true);
    expect(await d.remove()).toBe(false);
    expect((await readdir(join(dataDir, "sandboxes"))).sort()).toEqual(["Bad_Name", "stray-file"]);
    await expect(SandboxDir.open(dataDir, "sb-1")).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each(["", "..", "../x", "a/b", "UP"])("rejects id %j", async (id) => {
    await expect(SandboxDir.create(dataDir, id)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(SandboxDir.open(dataDir, id)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("lists nothing for a fresh data dir", async () => {
    expect(await SandboxDir.list(dataDir)).toEqual({ ids: [], removedLeftovers: [] });
  });
});

describe("socket path budget", () => {
  it("counts <dir>/vsock.sock_<u32 port>", () => {
    // /v/sandboxes/<id>/vsock.sock_4294967295
    expect(longestSocketPathBytes("/v", 3)).toBe("/v/sandboxes/abc/vsock.sock_4294967295".length);
  });

  it("fits the default data_dir with ids up to 62 chars", () => {
    expect(maxSandboxIdLength("/var/lib/vmm")).toBe(62);
    expect(() => assertSocketPathsFit("/var/lib/vmm", 62)).not.toThrow();
    expect(() => assertSocketPathsFit("/var/lib/vmm", 63)).toThrow(InvalidArgumentError);
  });

  it("tells to shorten data_dir", async () => {
    const longDir = `/${"d".repeat(80)}`;
    const err = (() => {
      try {
        assertSocketPathsFit(longDir, 20);
      } catch (e) {
        return e as InvalidArgumentError;
      }
    })();
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err?.field).toBe("data_dir");
    expect(err?.message).toContain(`${MAX_SOCKET_PATH_BYTES}-byte`);
    expect(err?.hint).toMatch(/shorten data_dir \(now 81 bytes/);
    await expect(SandboxDir.create(longDir, "a".repeat(20))).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});

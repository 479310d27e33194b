import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import {
  KernelConfigCheck,
  missingGuestKernelOptions,
  parseKernelConfig,
  readKernelConfig,
} from "./kernel-config.js";

const dir = mkdtempSync(join(tmpdir(), "vmmt-kconfig-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = [
  "CONFIG_VIRTIO_MMIO=y",
  "CONFIG_VIRTIO_BLK=y",
  "CONFIG_EXT4_FS=y",
  "CONFIG_VSOCKETS=y",
  "CONFIG_VIRTIO_VSOCKETS=y",
  "CONFIG_SERIAL_8250_CONSOLE=y",
  "CONFIG_DEVTMPFS=y",
  "CONFIG_UNIX98_PTYS=y",
  'CONFIG_LOCALVERSION="-vmm"',
  "# CONFIG_MODULES is not set",
].join("\n");

/** An "image": filler, then the IKCONFIG blob at `at`, then more filler. */
function image(name: string, config: string | undefined, at = 1000): string {
  const blob = config
    ? Buffer.concat([Buffer.from("IKCFG_ST"), gzipSync(config), Buffer.from("IKCFG_ED")])
    : Buffer.alloc(0);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([Buffer.alloc(at, 0x90), blob, Buffer.alloc(5000, 0xcc)]));
  return path;
}

function resolved(path: string) {
  const st = statSync(path);
  return { path, identity: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
}

describe("kernel config", () => {
  it("reads the configuration embedded by CONFIG_IKCONFIG", async () => {
    const config = await readKernelConfig(image("good", GOOD));
    expect(config?.get("VIRTIO_BLK")).toBe("y");
    expect(config?.get("LOCALVERSION")).toBe("-vmm");
    expect(config?.has("MODULES")).toBe(false);
    expect(missingGuestKernelOptions(config ?? new Map())).toEqual([]);
  });

  it("finds the marker when it straddles two reads (4 MiB chunks)", async () => {
    const config = await readKernelConfig(image("straddle", GOOD, (4 << 20) - 3));
    expect(config?.get("VSOCKETS")).toBe("y");
  });

  it("is undefined for an image without an embedded config", async () => {
    expect(await readKernelConfig(image("none", undefined))).toBeUndefined();
  });

  it("names options that are modules or missing, with what fails", () => {
    const config = parseKernelConfig(
      GOOD.replace("CONFIG_VIRTIO_BLK=y", "CONFIG_VIRTIO_BLK=m").replace("CONFIG_VSOCKETS=y\n", ""),
    );
    expect(missingGuestKernelOptions(config)).toEqual([
      "CONFIG_VIRTIO_BLK (is m: no root disk)",
      "CONFIG_VSOCKETS (not set: no AF_VSOCK: the agent cannot listen)",
    ]);
  });

  it("reads an image once per identity, again after it changes", async () => {
    const check = new KernelConfigCheck();
    const path = image("changing", GOOD);
    const first = check.missing(resolved(path));
    expect(check.missing(resolved(path))).toBe(first);
    expect(await first).toEqual([]);
    writeFileSync(
      path,
      Buffer.concat([
        Buffer.from("IKCFG_ST"),
        gzipSync("CONFIG_EXT4_FS=m\n"),
        Buffer.from("IKCFG_ED"),
      ]),
    );
    const second = await check.missing(resolved(path));
    expect(second).toContain("CONFIG_EXT4_FS (is m: the rootfs cannot be mounted)");
    expect(await check.missing(resolved(image("plain", undefined)))).toBeUndefined();
  });
});

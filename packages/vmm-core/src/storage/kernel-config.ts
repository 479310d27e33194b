import { type FileHandle, open } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import type { ResolvedImage } from "./image.js";

/** A kernel's build configuration: option name without `CONFIG_` → value (`y`, `m`, a number, a string). */
export type KernelConfig = ReadonlyMap<string, string>;

/**
 * Options the guest needs built in (`=y`): Firecracker boots without an initramfs, so a driver left as a
 * module is never loaded. Each with what fails without it (guest/kernel/vmm-guest.config has the rest).
 */
export const GUEST_KERNEL_REQUIRED: ReadonlyArray<readonly [option: string, why: string]> = [
  ["VIRTIO_MMIO", "Firecracker's virtio transport: no devices at all"],
  ["VIRTIO_BLK", "no root disk"],
  ["EXT4_FS", "the rootfs cannot be mounted"],
  ["VSOCKETS", "no AF_VSOCK: the agent cannot listen"],
  ["VIRTIO_VSOCKETS", "no vsock device: the host cannot reach the agent"],
  ["SERIAL_8250_CONSOLE", "no console output"],
  ["DEVTMPFS", "no /dev"],
  ["UNIX98_PTYS", "no PTY sessions"],
];

// kernel/configs.c (CONFIG_IKCONFIG) embeds the gzipped .config between these markers.
const START = Buffer.from("IKCFG_ST");
const END = Buffer.from("IKCFG_ED");
const CHUNK = 4 << 20;

/**
 * Reads the configuration embedded in an uncompressed kernel image (CONFIG_IKCONFIG), or `undefined`
 * when the image carries none (most distribution kernels; compressed images). Reads the file once.
 */
export async function readKernelConfig(path: string): Promise<KernelConfig | undefined> {
  await using file = await open(path, "r");
  const buf = Buffer.alloc(CHUNK + START.length);
  let carry = 0;
  let pos = 0;
  for (;;) {
    const { bytesRead } = await file.read(buf, carry, CHUNK, pos);
    if (bytesRead === 0) return undefined;
    const window = buf.subarray(0, carry + bytesRead);
    const at = window.indexOf(START);
    if (at >= 0) return readBlob(file, pos - carry + at + START.length);
    pos += bytesRead;
    // Keep the tail: a marker may straddle two reads.
    carry = Math.min(START.length - 1, window.length);
    window.copy(buf, 0, window.length - carry);
  }
}

async function readBlob(file: FileHandle, offset: number): Promise<KernelConfig | undefined> {
  // A 6.1 config is ~140 KB, ~35 KB gzipped; read generously and stop at the end marker.
  const { buffer, bytesRead } = await file.read(Buffer.alloc(1 << 20), 0, 1 << 20, offset);
  const data = buffer.subarray(0, bytesRead);
  const end = data.indexOf(END);
  if (end < 0) return undefined;
  let text: string;
  try {
    text = gunzipSync(data.subarray(0, end)).toString("utf8");
  } catch {
    return undefined;
  }
  return parseKernelConfig(text);
}

/** Parses `.config` text: `CONFIG_X=v` lines (quotes kept off strings); `# CONFIG_X is not set` omitted. */
export function parseKernelConfig(text: string): KernelConfig {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  }
  return out;
}

/** The required options `config` lacks or has as modules, as `CONFIG_X (is m: why)` texts. */
export function missingGuestKernelOptions(config: KernelConfig): string[] {
  return GUEST_KERNEL_REQUIRED.filter(([opt]) => config.get(opt) !== "y").map(
    ([opt, why]) =>
      `CONFIG_${opt} (${config.has(opt) ? `is ${config.get(opt)}` : "not set"}: ${why})`,
  );
}

/**
 * Checks kernel images for the options a guest needs, reading each image's embedded config once per
 * file identity (path, size, mtime, inode): Create calls it for every sandbox.
 */
export class KernelConfigCheck {
  readonly #cache = new Map<string, Promise<readonly string[] | undefined>>();

  /**
   * The missing options of `kernel` (empty: all there), or `undefined` when its config cannot be read
   * (no CONFIG_IKCONFIG, or unreadable): then nothing can be said before booting it.
   */
  missing(kernel: ResolvedImage): Promise<readonly string[] | undefined> {
    const { path, identity } = kernel;
    const key = `${path}\0${identity.size}\0${identity.mtimeMs}\0${identity.ino}`;
    let result = this.#cache.get(key);
    if (!result) {
      result = readKernelConfig(path).then(
        (config) => (config ? missingGuestKernelOptions(config) : undefined),
        () => undefined,
      );
      for (const old of this.#cache.keys())
        if (old.startsWith(`${path}\0`)) this.#cache.delete(old);
      this.#cache.set(key, result);
    }
    return result;
  }
}

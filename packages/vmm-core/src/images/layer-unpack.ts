/**
 * Applies an image's layers, in order, into a directory: each layer blob is
 * decompressed once (layer-media.ts) into a plain tar while its headers are
 * checked against the path rules (layer-path-guard.ts), then Debian's
 * `umoci raw unpack` extracts the checked tars from a private OCI layout.
 *
 * Why umoci: it implements the OCI layer rules we would otherwise hand-write
 * — whiteouts (`.wh.<name>`, opaque `.wh..wh..opq`), ownership (numeric
 * uid/gid), modes incl. setuid/setgid/sticky, xattrs (pax SCHILY.xattr),
 * symlinks, hard links, device nodes and FIFOs — and it resolves every path
 * with a secure join (it never writes outside the root it unpacks into, even
 * through a malicious symlink). Our own header scan runs first because a
 * secure join *clamps* an escaping path instead of failing: we reject such
 * an image outright (INVALID_ARGUMENT on `image`) rather than build a
 * different tree than the layer describes.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  ResourceExhaustedError,
} from "../errors.js";
import { mapDiskError } from "../storage/disk-errors.js";
import { layerDecompressor } from "./layer-media.js";
import { LayerPathGuard } from "./layer-path-guard.js";
import { tarEntries } from "./tar-entries.js";
import type { ImageSource, PulledImage } from "./types.js";

const run = promisify(execFile);
const PLAIN_TAR = "application/vnd.oci.image.layer.v1.tar";
const REF = "rootfs";

/**
 * Unpacks `image`'s layers into `rootfs` (created; must not exist), using
 * `work` (an empty directory) for the decompressed layers. Throws
 * InvalidArgumentError("image", …) naming the layer and entry when a layer
 * breaks a path rule, or naming the layer when its uncompressed digest is
 * not the config's diff_id (nothing is unpacked then), FailedPreconditionError for
 * a layer media type it cannot read, ResourceExhaustedError on a full disk.
 */
export async function unpackLayers(
  image: PulledImage,
  source: ImageSource,
  work: string,
  rootfs: string,
  signal?: AbortSignal,
): Promise<void> {
  const blobs = join(work, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const guard = new LayerPathGuard();
  const layers: { mediaType: string; digest: string; size: number }[] = [];
  try {
    for (const [i, layer] of image.layers.entries()) {
      signal?.throwIfAborted();
      guard.nextLayer();
      const plain = await plainLayer(image, layer, source.blobPath(layer.digest), blobs, guard);
      const diffId = image.config.rootfs.diff_ids[i];
      if (plain.digest !== diffId) {
        // The blob matched its digest, but not what the config says it unpacks to: the
        // config describes other content (a tampered or mis-assembled image).
        throw new InvalidArgumentError(
          "image",
          `${image.reference}: layer ${i} (${layer.digest}) decompresses to ${plain.digest} but the image config lists diff_id ${diffId ?? "(none)"}; the image is rejected (nothing was unpacked)`,
          { hint: "rebuild and push the image again; its config does not match its layers" },
        );
      }
      layers.push(plain);
    }
    const config = await blob(blobs, {
      architecture: image.config.architecture,
      os: image.config.os,
      config: {},
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    });
    const manifest = await blob(blobs, {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers,
    });
    await writeFile(join(work, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      join(work, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...manifest,
            annotations: { "org.opencontainers.image.ref.name": REF },
          },
        ],
      }),
    );
  } catch (err) {
    throw mapDiskError(err, `unpacking image ${image.reference}`);
  }
  try {
    await run("umoci", ["raw", "unpack", "--image", `${work}:${REF}`, rootfs], {
      signal,
      maxBuffer: 4 << 20,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new FailedPreconditionError("umoci is not installed: images cannot be unpacked", {
        cause: err,
        hint: "install the umoci package (apt-get install umoci)",
      });
    }
    if (/no space left on device|disk quota exceeded/i.test(e.stderr ?? "")) {
      throw new ResourceExhaustedError(`disk full while unpacking image ${image.reference}`, {
        cause: err,
        hint: "free space in data_dir (remove images, snapshots or stopped sandboxes)",
      });
    }
    throw new Error(
      `umoci raw unpack of ${image.reference} failed: ${lastLine(e.stderr) ?? e.message}`,
      {
        cause: err,
      },
    );
  }
}

/** Decompresses one layer into the layout while checking its headers; returns its plain-tar descriptor. */
async function plainLayer(
  image: PulledImage,
  layer: PulledImage["layers"][number],
  path: string,
  blobs: string,
  guard: LayerPathGuard,
): Promise<{ mediaType: string; digest: string; size: number }> {
  const decompress = layerDecompressor(layer.mediaType, layer.digest);
  const input = createReadStream(path, { highWaterMark: 1 << 20 });
  const stream = decompress ? input.pipe(decompress) : input;
  input.on("error", (err) => decompress?.destroy(err));
  const tmp = join(blobs, `.layer-${layer.digest.slice(7, 19)}`);
  const hash = createHash("sha256");
  let size = 0;
  await using fh = await open(tmp, "w");
  async function* tee(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      await fh.write(chunk);
      yield chunk;
    }
  }
  const chunks = tee();
  try {
    for await (const entry of tarEntries(chunks)) {
      const bad = guard.check(entry);
      if (bad) {
        throw new InvalidArgumentError(
          "image",
          `${image.reference}: layer ${layer.digest} entry ${JSON.stringify(bad.entry)} ${bad.reason}; the image is rejected (nothing was unpacked)`,
          { hint: "rebuild the image without paths that leave its root" },
        );
      }
    }
    for await (const _ of chunks); // the end-of-archive padding, kept so the tar stays whole
  } catch (err) {
    stream.destroy();
    if (err instanceof InvalidArgumentError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") throw err;
    if (code === "ENOENT" && (err as NodeJS.ErrnoException).path === path) {
      throw new FailedPreconditionError(
        `${image.reference}: layer ${layer.digest} is missing from the image store`,
        { cause: err, hint: `pull the image again (vmm image pull ${image.reference})` },
      );
    }
    throw new InvalidArgumentError(
      "image",
      `${image.reference}: layer ${layer.digest} is not a readable ${layer.mediaType} archive: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const digest = `sha256:${hash.digest("hex")}`;
  await rename(tmp, join(blobs, digest.slice(7)));
  return { mediaType: PLAIN_TAR, digest, size };
}

async function blob(blobs: string, value: unknown): Promise<{ digest: string; size: number }> {
  const data = Buffer.from(JSON.stringify(value));
  const hex = createHash("sha256").update(data).digest("hex");
  await writeFile(join(blobs, hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

function lastLine(text: string | undefined): string | undefined {
  const lines = (text ?? "")
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "");
  return lines.at(-1)?.trim();
}

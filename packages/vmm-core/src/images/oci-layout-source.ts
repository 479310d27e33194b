/**
 * An {@link ImageSource} over an OCI image layout directory (image-spec
 * image-layout.md: `oci-layout`, `index.json`, `blobs/sha256/<hex>`), the
 * format `skopeo copy … oci:<dir>:<tag>` and `umoci` write. Images are found
 * by their `org.opencontainers.image.ref.name` annotation. It never pulls:
 * `pull` answers what `lookup` finds or NOT_FOUND. Used by tests and the
 * benchmark (images built locally), and for serving a pre-fetched layout.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync, zstdDecompressSync } from "node:zlib";
import { NotFoundError } from "../errors.js";
import { layerCompression } from "./layer-media.js";
import type { ImageSource, OciDescriptor, OciImageConfig, PulledImage } from "./types.js";

const REF_ANNOTATION = "org.opencontainers.image.ref.name";

/** Reads images out of the OCI layout at `dir`. */
export class OciLayoutImageSource implements ImageSource {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async lookup(reference: string): Promise<PulledImage | undefined> {
    const index = JSON.parse(await readFile(join(this.dir, "index.json"), "utf8")) as {
      manifests?: (OciDescriptor & { annotations?: Record<string, string> })[];
    };
    const desc = index.manifests?.find((m) => m.annotations?.[REF_ANNOTATION] === reference);
    if (!desc) return undefined;
    const manifest = JSON.parse(await readFile(this.blobPath(desc.digest), "utf8")) as {
      config: OciDescriptor;
      layers: OciDescriptor[];
    };
    const config = JSON.parse(
      await readFile(this.blobPath(manifest.config.digest), "utf8"),
    ) as OciImageConfig;
    return {
      reference,
      manifestDigest: desc.digest,
      config,
      configDescriptor: manifest.config,
      layers: manifest.layers,
      sizeBytes: manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
      pulledAtMs: Date.now(),
    };
  }

  async pull(reference: string): Promise<PulledImage> {
    const found = await this.lookup(reference);
    if (!found) throw new NotFoundError("image", reference);
    return found;
  }

  blobPath(digest: string): string {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(digest)?.[1];
    if (!hex) throw new Error(`not a sha256 digest: ${digest}`);
    return join(this.dir, "blobs", "sha256", hex);
  }
}

/** One layer to write: its blob bytes and media type. */
export interface LayerBlob {
  readonly data: Uint8Array;
  /** Default `application/vnd.oci.image.layer.v1.tar`. */
  readonly mediaType?: string;
  /** The config's diff_id for it; default the sha256 of the uncompressed tar (as it must be). */
  readonly diffId?: string;
}

/** sha256 of a layer's uncompressed tar (its diff_id); the blob's own digest for media types not known here. */
function diffIdOf(data: Uint8Array, mediaType: string): string {
  const compression = layerCompression(mediaType);
  const plain =
    compression === "gzip"
      ? gunzipSync(data)
      : compression === "zstd"
        ? zstdDecompressSync(data)
        : data;
  return `sha256:${createHash("sha256").update(plain).digest("hex")}`;
}

/**
 * Writes an image into the OCI layout at `dir` (created; other images kept)
 * under `reference`; returns its manifest digest. @private for tests and
 * vmm-bench, which build their images locally.
 */
export async function writeOciLayoutImage(
  dir: string,
  reference: string,
  layers: readonly LayerBlob[],
  config: OciImageConfig["config"] = {},
): Promise<string> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const put = async (data: Uint8Array): Promise<{ digest: string; size: number }> => {
    const hex = createHash("sha256").update(data).digest("hex");
    await writeFile(join(dir, "blobs", "sha256", hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layerDescs: OciDescriptor[] = [];
  const diffIds: string[] = [];
  for (const l of layers) {
    const mediaType = l.mediaType ?? "application/vnd.oci.image.layer.v1.tar";
    layerDescs.push({ mediaType, ...(await put(l.data)) });
    diffIds.push(l.diffId ?? diffIdOf(l.data, mediaType));
  }
  const cfg = await put(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config,
        rootfs: { type: "layers", diff_ids: diffIds },
      }),
    ),
  );
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
        layers: layerDescs,
      }),
    ),
  );
  let index: { schemaVersion: number; manifests: unknown[] } = { schemaVersion: 2, manifests: [] };
  try {
    index = JSON.parse(await readFile(join(dir, "index.json"), "utf8"));
  } catch {
    // A new layout.
  }
  index.manifests = [
    ...index.manifests.filter(
      (m) =>
        (m as { annotations?: Record<string, string> }).annotations?.[REF_ANNOTATION] !== reference,
    ),
    {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      annotations: { [REF_ANNOTATION]: reference },
    },
  ];
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, "index.json"), JSON.stringify(index));
  return manifest.digest;
}

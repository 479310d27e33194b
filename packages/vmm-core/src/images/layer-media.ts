/**
 * Layer media types the rootfs builder reads, and the decompressor each
 * needs (Node's own zlib: gzip, and zstd since Node 22.15/23.8).
 */
import type { Transform } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { FailedPreconditionError } from "../errors.js";

/** How a layer blob is compressed. */
export type Compression = "none" | "gzip" | "zstd";

const MEDIA_TYPES: Readonly<Record<string, Compression>> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
};

/** The layer media types the builder can apply. */
export const SUPPORTED_LAYER_MEDIA_TYPES: readonly string[] = Object.keys(MEDIA_TYPES);

/** The compression of a layer media type, or undefined for one the builder cannot read. */
export function layerCompression(mediaType: string): Compression | undefined {
  return MEDIA_TYPES[mediaType];
}

/**
 * A stream that turns a layer blob of `mediaType` into a plain tar, or
 * undefined for an uncompressed layer. FailedPreconditionError naming the
 * media type for any other.
 */
export function layerDecompressor(mediaType: string, digest: string): Transform | undefined {
  const kind = layerCompression(mediaType);
  if (kind === undefined) {
    throw new FailedPreconditionError(
      `image layer ${digest} has media type ${JSON.stringify(mediaType)}, which the rootfs builder cannot apply`,
      { hint: `supported layer media types: ${SUPPORTED_LAYER_MEDIA_TYPES.join(", ")}` },
    );
  }
  if (kind === "gzip") return createGunzip();
  if (kind === "zstd") return createZstdDecompress();
  return undefined;
}

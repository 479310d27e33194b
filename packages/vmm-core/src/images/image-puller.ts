import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { DataLossError, FailedPreconditionError, ResourceExhaustedError } from "../errors.js";
import type { BlobStore } from "./blob-store.js";
import type { ImageRecord } from "./image-records.js";
import type { ImageReference } from "./image-reference.js";
import type { FetchedManifest, RegistryClient } from "./registry-client.js";
import {
  type IndexEntry,
  SANDBOX_PLATFORM,
  selectPlatform,
  wrongPlatform,
} from "./select-platform.js";
import type { ImagePullProgress, OciDescriptor, OciImageConfig } from "./types.js";

/** Largest image config blob accepted, bytes. */
const MAX_CONFIG_BYTES = 16 << 20;
/** Layers downloaded at once per pull. */
const LAYER_CONCURRENCY = 3;
/** Least time between two byte-count progress reports of one pull. */
const PROGRESS_INTERVAL_MS = 100;

/** What one pull uses. */
export interface PullDeps {
  readonly client: RegistryClient;
  readonly blobs: BlobStore;
  /** Layers bigger than this fail before any download (RESOURCE_EXHAUSTED). */
  readonly maxLayerBytes: number;
}

/**
 * Pulls one image into the blob store: manifest (or index → its linux/amd64
 * manifest), config, then every layer, each verified. Returns the record to
 * keep; the caller writes it. Progress goes to `emit` (throttled to one
 * byte-count report per 100 ms, plus one per phase); the final `done` report
 * is the caller's.
 */
export async function pullImage(
  deps: PullDeps,
  ref: ImageReference,
  emit: (p: ImagePullProgress) => void,
  signal: AbortSignal,
): Promise<ImageRecord> {
  emit({ status: "resolving", currentBytes: 0, totalBytes: 0, digest: "", done: false });
  const top = await fetchVerified(deps.client, ref, ref.digest ?? ref.tag!, undefined, signal);
  let manifest = top;
  let indexDigest: string | undefined;
  if (isIndex(top)) {
    const entries = (top.json.manifests ?? []) as IndexEntry[];
    const entry = selectPlatform(ref.normalized, entries);
    indexDigest = top.digest;
    manifest = await fetchVerified(deps.client, ref, entry.digest, entry.size, signal);
    if (isIndex(manifest)) {
      throw new FailedPreconditionError(
        `image ${ref.normalized}: the linux/amd64 entry of its index is another index (nested indexes are not supported)`,
      );
    }
  }
  const m = manifest.json as {
    schemaVersion?: unknown;
    config?: OciDescriptor;
    layers?: OciDescriptor[];
  };
  if (m.schemaVersion !== 2 || !m.config || !Array.isArray(m.layers)) {
    throw new FailedPreconditionError(
      `image ${ref.normalized}: manifest ${manifest.digest} is not an OCI or Docker v2 schema 2 image manifest (media type ${JSON.stringify(manifest.mediaType)})`,
      { hint: "push the image again with a current docker, buildah or skopeo" },
    );
  }
  const configDescriptor = checkDescriptor(ref, m.config, "config");
  const layers = m.layers.map((l, i) => checkDescriptor(ref, l, `layer ${i}`));
  if (configDescriptor.size > MAX_CONFIG_BYTES) {
    throw new ResourceExhaustedError(
      `image ${ref.normalized}: its config blob is ${configDescriptor.size} bytes, more than the ${MAX_CONFIG_BYTES} accepted`,
    );
  }
  for (const [i, l] of layers.entries()) {
    if (l.size > deps.maxLayerBytes) {
      throw new ResourceExhaustedError(
        `image ${ref.normalized}: layer ${i} (${l.digest}) is ${l.size} bytes, more than [images] max_layer_bytes = ${deps.maxLayerBytes}`,
        { hint: "raise [images] max_layer_bytes or use a smaller image" },
      );
    }
  }

  const totalBytes = configDescriptor.size + layers.reduce((n, l) => n + l.size, 0);
  let currentBytes = 0;
  let lastEmitMs = 0;
  let currentDigest = configDescriptor.digest;
  const report = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastEmitMs < PROGRESS_INTERVAL_MS) return;
    lastEmitMs = now;
    emit({ status: "downloading", currentBytes, totalBytes, digest: currentDigest, done: false });
  };
  const fetchBlob = async (d: OciDescriptor, blobSignal: AbortSignal) => {
    // Every blob is announced when it starts, so a small layer fetched between two
    // timed reports still shows up in the client's progress.
    currentDigest = d.digest;
    report(true);
    await deps.blobs.fetch(
      d.digest,
      d.size,
      (offset, s) => deps.client.openBlob(ref, d.digest, offset, s),
      (n) => {
        currentBytes += n;
        currentDigest = d.digest;
        report(false);
      },
      blobSignal,
    );
    currentDigest = d.digest;
    report(true);
  };

  await fetchBlob(configDescriptor, signal);
  const config = await readConfig(deps.blobs.path(configDescriptor.digest), ref);
  if (config.os !== SANDBOX_PLATFORM.os || config.architecture !== SANDBOX_PLATFORM.architecture) {
    throw wrongPlatform(ref.normalized, [`${config.os}/${config.architecture}`]);
  }
  if (config.rootfs?.diff_ids?.length !== layers.length) {
    throw new FailedPreconditionError(
      `image ${ref.normalized}: its config lists ${config.rootfs?.diff_ids?.length ?? 0} layer diff_ids but its manifest ${layers.length} layers`,
    );
  }
  await fetchLayers(layers, (d, s) => fetchBlob(d, s), signal);
  // Manifests last: a manifest in the store means its blobs are there too.
  await deps.blobs.putBytes(manifest.digest, manifest.bytes);
  if (indexDigest !== undefined) await deps.blobs.putBytes(indexDigest, top.bytes);
  return {
    reference: ref.normalized,
    manifestDigest: manifest.digest,
    manifestMediaType: manifest.mediaType,
    manifestSize: manifest.bytes.length,
    ...(indexDigest !== undefined && { indexDigest }),
    config,
    configDescriptor,
    layers,
    sizeBytes: totalBytes,
    pulledAtMs: Date.now(),
  };
}

/**
 * Downloads `layers`, LAYER_CONCURRENCY at a time. The first failure stops the
 * others and is thrown once every download has settled, so a failed pull
 * leaves nothing running that could still write a partial file a retry is
 * about to resume.
 */
async function fetchLayers(
  layers: readonly OciDescriptor[],
  fetchOne: (d: OciDescriptor, signal: AbortSignal) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  const layerSignal = AbortSignal.any([signal, stop.signal]);
  const queue = [...layers];
  let firstError: { err: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.min(LAYER_CONCURRENCY, queue.length) }, async () => {
      for (let d = queue.shift(); d && !layerSignal.aborted; d = queue.shift()) {
        try {
          await fetchOne(d, layerSignal);
        } catch (err) {
          firstError ??= { err };
          stop.abort(err);
          return;
        }
      }
    }),
  );
  if (firstError) throw firstError.err;
  signal.throwIfAborted();
}

interface VerifiedManifest extends FetchedManifest {
  readonly digest: string;
  readonly json: Record<string, unknown>;
}

async function fetchVerified(
  client: RegistryClient,
  ref: ImageReference,
  tagOrDigest: string,
  expectedSize: number | undefined,
  signal: AbortSignal,
): Promise<VerifiedManifest> {
  const fetched = await client.getManifest(ref, tagOrDigest, signal);
  const digest = `sha256:${createHash("sha256").update(fetched.bytes).digest("hex")}`;
  const expected = tagOrDigest.startsWith("sha256:") ? tagOrDigest : fetched.headerDigest;
  if (expected?.startsWith("sha256:") && expected !== digest) {
    throw new DataLossError(
      `image ${ref.normalized}: manifest ${expected} arrived with digest ${digest}; nothing was stored`,
    );
  }
  if (expectedSize !== undefined && fetched.bytes.length !== expectedSize) {
    throw new DataLossError(
      `image ${ref.normalized}: manifest ${digest} is ${fetched.bytes.length} bytes, its index says ${expectedSize}`,
    );
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fetched.bytes.toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new FailedPreconditionError(`image ${ref.normalized}: manifest ${digest} is not JSON`, {
      cause: err,
    });
  }
  const mediaType =
    typeof json.mediaType === "string" && json.mediaType !== ""
      ? json.mediaType
      : fetched.mediaType;
  return { ...fetched, mediaType, digest, json };
}

function isIndex(m: VerifiedManifest): boolean {
  return (
    m.mediaType === "application/vnd.oci.image.index.v1+json" ||
    m.mediaType === "application/vnd.docker.distribution.manifest.list.v2+json" ||
    (Array.isArray(m.json.manifests) && !("layers" in m.json))
  );
}

function checkDescriptor(ref: ImageReference, d: OciDescriptor, what: string): OciDescriptor {
  if (
    typeof d !== "object" ||
    d === null ||
    typeof d.digest !== "string" ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw new FailedPreconditionError(
      `image ${ref.normalized}: its ${what} descriptor is malformed`,
    );
  }
  if (!/^sha256:[a-f0-9]{64}$/.test(d.digest)) {
    throw new FailedPreconditionError(
      `image ${ref.normalized}: its ${what} has digest ${JSON.stringify(d.digest.slice(0, 80))}; only sha256 is supported`,
    );
  }
  return { mediaType: String(d.mediaType ?? ""), digest: d.digest, size: d.size };
}

async function readConfig(path: string, ref: ImageReference): Promise<OciImageConfig> {
  try {
    const c = JSON.parse(await readFile(path, "utf8")) as OciImageConfig;
    if (typeof c !== "object" || c === null) throw new Error("not an object");
    // Only what sandboxes use: history and the rest can be large.
    const k = c.config;
    return {
      architecture: c.architecture,
      os: c.os,
      ...(c.created !== undefined && { created: c.created }),
      ...(k && {
        config: {
          ...(k.User !== undefined && { User: k.User }),
          ...(k.Env !== undefined && { Env: k.Env }),
          ...(k.Entrypoint !== undefined && { Entrypoint: k.Entrypoint }),
          ...(k.Cmd !== undefined && { Cmd: k.Cmd }),
          ...(k.WorkingDir !== undefined && { WorkingDir: k.WorkingDir }),
          ...(k.Labels !== undefined && { Labels: k.Labels }),
        },
      }),
      rootfs: c.rootfs,
    };
  } catch (err) {
    throw new FailedPreconditionError(`image ${ref.normalized}: its config blob is not JSON`, {
      cause: err,
    });
  }
}

import { join } from "node:path";
import { FailedPreconditionError, NotFoundError } from "../errors.js";
import type { Logger } from "../internal/index.js";
import { BlobStore, diskError } from "./blob-store.js";
import { pullImage } from "./image-puller.js";
import { type ImageRecord, ImageRecords } from "./image-records.js";
import { parseImageReference } from "./image-reference.js";
import { RegistryClient, type RegistryClientOptions } from "./registry-client.js";
import type { ImagePullProgress, ImageSource, PulledImage } from "./types.js";

/** Says who uses an image (a sandbox, a snapshot), or undefined when nothing does. */
export type ImageInUse = (manifestDigest: string) => string | undefined;

/** Options of {@link ImageStore.open}. */
export interface ImageStoreOptions {
  /** The store's directory, an OCI image layout (the daemon uses `<data_dir>/oci`). */
  readonly dir: string;
  /** How registries are reached: plain-HTTP hosts, credentials, timeouts. */
  readonly registry?: RegistryClientOptions;
  /** Layers bigger than this fail before download with RESOURCE_EXHAUSTED; default 4 GiB. */
  readonly maxLayerBytes?: number;
  /** Consulted by remove; default: nothing uses any image. */
  readonly isInUse?: ImageInUse;
  readonly logger?: Logger;
}

/** Default of `[images] max_layer_bytes`: 4 GiB. */
export const DEFAULT_MAX_LAYER_BYTES = 4 * 2 ** 30;

interface SharedPull {
  readonly done: Promise<ImageRecord>;
  readonly listeners: Set<(p: ImagePullProgress) => void>;
  last: ImagePullProgress | undefined;
  waiters: number;
  readonly controller: AbortController;
}

/**
 * The image store: pulled images in an OCI image layout under data_dir
 * (`oci-layout`, `index.json`, `blobs/sha256/<hex>`, `tmp/` for downloads in
 * progress) plus `images.json`, the records of what was pulled by which
 * reference. Implements {@link ImageSource} for Create; ListImages and
 * RemoveImage go through `list` and `remove`.
 *
 * Invariants: a record exists only once its manifest, config and every layer
 * are stored and verified; a blob is removed only when no record needs it and
 * no pull is downloading it; all pulls of one normalized reference in flight
 * at once are one pull (its callers share the result and every progress
 * report), and concurrent downloads of one blob are one download.
 */
export class ImageStore implements ImageSource {
  private readonly blobs: BlobStore;
  private readonly records: ImageRecords;
  private readonly client: RegistryClient;
  private readonly maxLayerBytes: number;
  private readonly isInUse: ImageInUse;
  private readonly logger: Logger | undefined;
  private readonly pulls = new Map<string, SharedPull>();
  /** Serializes record writes and removals. */
  private mutation: Promise<unknown> = Promise.resolve();

  private constructor(blobs: BlobStore, records: ImageRecords, options: ImageStoreOptions) {
    this.blobs = blobs;
    this.records = records;
    this.client = new RegistryClient(options.registry);
    this.maxLayerBytes = options.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES;
    this.isInUse = options.isInUse ?? (() => undefined);
    this.logger = options.logger;
  }

  /** Opens (creating) the store at `options.dir`. */
  static async open(options: ImageStoreOptions): Promise<ImageStore> {
    const blobs = await BlobStore.open(options.dir);
    const records = await ImageRecords.load(options.dir);
    return new ImageStore(blobs, records, options);
  }

  /** The store's directory. */
  get dir(): string {
    return this.blobs.root;
  }

  async lookup(reference: string): Promise<PulledImage | undefined> {
    return this.records.get(parseImageReference(reference).normalized);
  }

  /**
   * Pulls an image (always asking the registry what the reference names now;
   * blobs already stored are not downloaded again, a partial download is
   * resumed). Joins a pull of the same reference already under way. A
   * caller's `signal` abandons only its own wait; the download stops when
   * every caller has gone.
   */
  async pull(
    reference: string,
    options: { onProgress?: (p: ImagePullProgress) => void; signal?: AbortSignal } = {},
  ): Promise<PulledImage> {
    const ref = parseImageReference(reference);
    const signal = options.signal ?? new AbortController().signal;
    signal.throwIfAborted();
    let shared = this.pulls.get(ref.normalized);
    if (!shared) {
      const controller = new AbortController();
      const listeners = new Set<(p: ImagePullProgress) => void>();
      const entry: SharedPull = {
        done: Promise.resolve() as unknown as Promise<ImageRecord>,
        listeners,
        last: undefined,
        waiters: 0,
        controller,
      };
      const emit = (p: ImagePullProgress) => {
        entry.last = p;
        for (const l of listeners) l(p);
      };
      (entry as { done: Promise<ImageRecord> }).done = (async () => {
        try {
          const record = await pullImage(
            { client: this.client, blobs: this.blobs, maxLayerBytes: this.maxLayerBytes },
            ref,
            emit,
            controller.signal,
          );
          await this.serialized(() => this.records.put(record)).catch((err: unknown) => {
            throw diskError(err, this.blobs.root);
          });
          this.logger?.info(
            { image: record.reference, digest: record.manifestDigest, bytes: record.sizeBytes },
            "image pulled",
          );
          emit({
            status: "pulled",
            currentBytes: record.sizeBytes,
            totalBytes: record.sizeBytes,
            digest: record.manifestDigest,
            done: true,
          });
          return record;
        } finally {
          if (this.pulls.get(ref.normalized) === entry) this.pulls.delete(ref.normalized);
        }
      })();
      // Rejections reach every waiter through wait(); one nobody waits for any more is not unhandled.
      entry.done.catch(() => {});
      shared = entry;
      this.pulls.set(ref.normalized, shared);
    }
    return this.wait(shared, options.onProgress, signal);
  }

  /** Every pulled image, oldest first. */
  async list(): Promise<PulledImage[]> {
    return this.records.all();
  }

  /**
   * Removes the image stored under `reference` and every blob no other image
   * needs. FAILED_PRECONDITION while a sandbox or snapshot uses its manifest
   * (unless another reference keeps that manifest stored); NOT_FOUND when it
   * was never pulled. Returns the removed record.
   */
  async remove(reference: string): Promise<PulledImage> {
    const ref = parseImageReference(reference);
    return this.serialized(async () => {
      const record = this.records.get(ref.normalized);
      if (!record) throw new NotFoundError("image", ref.normalized);
      const sharedByOther = this.records
        .all()
        .some(
          (r) => r.reference !== record.reference && r.manifestDigest === record.manifestDigest,
        );
      if (!sharedByOther) {
        const user = this.isInUse(record.manifestDigest);
        if (user !== undefined) {
          throw new FailedPreconditionError(`image ${record.reference} is in use by ${user}`, {
            hint: "remove what uses it first",
          });
        }
      }
      await this.records.delete(record.reference);
      const needed = this.records.referencedDigests();
      const orphans = [
        record.indexDigest,
        record.manifestDigest,
        record.configDescriptor.digest,
        ...record.layers.map((l) => l.digest),
      ].filter(
        (d): d is string => d !== undefined && !needed.has(d) && !this.blobs.isDownloading(d),
      );
      for (const d of new Set(orphans)) await this.blobs.remove(d);
      this.logger?.info({ image: record.reference, blobsRemoved: orphans.length }, "image removed");
      return record;
    });
  }

  blobPath(digest: string): string {
    return this.blobs.path(digest);
  }

  /** Path of `images.json` (for tools and tests). */
  get recordsPath(): string {
    return join(this.blobs.root, "images.json");
  }

  private async wait(
    shared: SharedPull,
    onProgress: ((p: ImagePullProgress) => void) | undefined,
    signal: AbortSignal,
  ): Promise<PulledImage> {
    shared.waiters++;
    if (onProgress) {
      if (shared.last) onProgress(shared.last);
      shared.listeners.add(onProgress);
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([shared.done, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort!);
      if (onProgress) shared.listeners.delete(onProgress);
      shared.waiters--;
      if (shared.waiters === 0 && signal.aborted) {
        shared.controller.abort(signal.reason);
        for (const [key, p] of this.pulls) if (p === shared) this.pulls.delete(key);
      }
      aborted.catch(() => {});
    }
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.mutation.then(fn, fn);
    this.mutation = run.catch(() => {});
    return run;
  }
}

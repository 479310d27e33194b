import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DataLossError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
} from "../errors.js";
import type { BlobResponse } from "./registry-client.js";

const DIGEST = /^sha256:([a-f0-9]{64})$/;

/** Partial downloads untouched for this long are removed when the store opens. */
const STALE_PARTIAL_MS = 24 * 3600_000;

/**
 * Where one blob comes from: opened at a byte offset (a resumed download asks
 * for the rest with a Range request; a source that cannot resume answers from 0).
 */
export type BlobSource = (offset: number, signal: AbortSignal) => Promise<BlobResponse>;

/**
 * The content-addressed blobs of an OCI image layout (`blobs/sha256/<hex>`).
 *
 * Invariant: a file under `blobs/` was verified (its sha256 is its name and its
 * size the descriptor's) before it was renamed there; nothing else writes
 * there. Downloads in progress live in `tmp/<hex>.partial` and are resumed from
 * their length by the next download of the same digest. Concurrent downloads of
 * one digest share one transfer.
 */
export class BlobStore {
  /** The layout's root directory. */
  readonly root: string;
  private readonly inflight = new Map<
    string,
    { done: Promise<void>; received: number; listeners: Set<(bytes: number) => void> }
  >();

  private constructor(root: string) {
    this.root = root;
  }

  /** Opens (creating) a layout at `root`; drops partial downloads older than a day. */
  static async open(root: string): Promise<BlobStore> {
    await mkdir(join(root, "blobs", "sha256"), { recursive: true, mode: 0o700 });
    await mkdir(join(root, "tmp"), { recursive: true, mode: 0o700 });
    await writeFile(join(root, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}\n');
    const now = Date.now();
    for (const name of await readdir(join(root, "tmp"))) {
      const p = join(root, "tmp", name);
      const st = await stat(p).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_PARTIAL_MS) await rm(p, { force: true });
    }
    return new BlobStore(root);
  }

  /** Path of a blob (whether or not it is stored). Throws for a malformed digest. */
  path(digest: string): string {
    return join(this.root, "blobs", "sha256", hexOf(digest));
  }

  /** True when the blob is stored with the expected size. */
  async has(digest: string, size: number): Promise<boolean> {
    const st = await stat(this.path(digest)).catch(() => undefined);
    return st?.isFile() === true && st.size === size;
  }

  /** Digests of every stored blob. */
  async list(): Promise<string[]> {
    const names = await readdir(join(this.root, "blobs", "sha256"));
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** True while a download of this digest is running. */
  isDownloading(digest: string): boolean {
    return this.inflight.has(digest);
  }

  /** Stores small content already in memory (a manifest) after checking its digest. */
  async putBytes(digest: string, bytes: Uint8Array): Promise<void> {
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (actual !== digest) {
      throw new DataLossError(`content expected to be ${digest} has digest ${actual}`);
    }
    if (await this.has(digest, bytes.length)) return;
    const tmp = join(this.root, "tmp", `${hexOf(digest)}.${process.pid}.${Date.now()}.bytes`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, this.path(digest));
    } catch (err) {
      await rm(tmp, { force: true });
      throw diskError(err, this.root);
    }
  }

  /**
   * Downloads a blob unless it is stored, verifying its sha256 and size while
   * streaming into `tmp/`; renamed into `blobs/` only when both match.
   * `onBytes` gets every byte count that lands (a resumed part counts at once).
   * A second call for a digest in flight joins it. Errors: digest or size
   * mismatch → DataLossError (the partial file is deleted); disk full →
   * ResourceExhaustedError; an interrupted transfer → UnavailableError (the
   * partial file stays, for the next attempt to resume).
   */
  async fetch(
    digest: string,
    size: number,
    source: BlobSource,
    onBytes: (bytes: number) => void,
    signal: AbortSignal,
  ): Promise<void> {
    for (;;) {
      const running = this.inflight.get(digest);
      if (!running) break;
      onBytes(running.received);
      running.listeners.add(onBytes);
      try {
        await running.done;
        return;
      } catch (err) {
        // The download we joined was abandoned by its own pull: try ourselves.
        if (!isAbort(err) || signal.aborted) throw err;
      } finally {
        running.listeners.delete(onBytes);
      }
    }
    if (await this.has(digest, size)) {
      onBytes(size);
      return;
    }
    const entry = {
      done: Promise.resolve(),
      received: 0,
      listeners: new Set<(bytes: number) => void>([onBytes]),
    };
    const emit = (n: number) => {
      entry.received += n;
      for (const l of entry.listeners) l(n);
    };
    entry.done = this.download(digest, size, source, emit, signal);
    this.inflight.set(digest, entry);
    try {
      await entry.done;
    } finally {
      this.inflight.delete(digest);
    }
  }

  /** Removes a blob (absent is fine). */
  async remove(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  private async download(
    digest: string,
    size: number,
    source: BlobSource,
    onBytes: (bytes: number) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const partial = join(this.root, "tmp", `${hexOf(digest)}.partial`);
    let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
    if (offset >= size) offset = 0;
    const res = await source(offset, signal);
    if (!res.partial) offset = 0;
    const hash = createHash("sha256");
    if (offset > 0) {
      for await (const chunk of createReadStream(partial, { end: offset - 1 })) hash.update(chunk);
      onBytes(offset);
    }
    let received = offset;
    let fh: Awaited<ReturnType<typeof open>> | undefined;
    try {
      fh = await open(partial, offset > 0 ? "r+" : "w", 0o600);
      if (offset > 0) await fh.truncate(offset);
      for await (const chunk of streamOf(res.body, signal)) {
        received += chunk.length;
        if (received > size) {
          await fh.close().catch(() => {});
          fh = undefined;
          await rm(partial, { force: true });
          throw new DataLossError(
            `blob ${digest} is larger than the ${size} bytes its descriptor says; nothing was stored`,
          );
        }
        hash.update(chunk);
        await fh.write(chunk, 0, chunk.length, received - chunk.length);
        onBytes(chunk.length);
      }
      if (received < size) {
        throw new UnavailableError(
          `the download of blob ${digest} ended after ${received} of ${size} bytes (kept for resuming)`,
        );
      }
      await fh.datasync();
      await fh.close();
      fh = undefined;
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== digest) {
        await rm(partial, { force: true });
        throw new DataLossError(
          `blob ${digest} arrived with digest ${actual}: the registry sent corrupted data; nothing was stored`,
          { hint: "pull again; if it persists the registry's copy is damaged" },
        );
      }
      await rename(partial, this.path(digest));
    } catch (err) {
      await fh?.close().catch(() => {});
      if (err instanceof DataLossError || err instanceof UnavailableError || isAbort(err))
        throw err;
      const mapped = diskError(err, this.root);
      if (mapped instanceof ResourceExhaustedError) await rm(partial, { force: true });
      if (mapped !== err) throw mapped;
      throw new UnavailableError(
        `the download of blob ${digest} was interrupted after ${received} of ${size} bytes (kept for resuming): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}

function hexOf(digest: string): string {
  const m = DIGEST.exec(digest);
  if (!m)
    throw new InvalidArgumentError("digest", `${JSON.stringify(digest)} is not sha256:<64 hex>`);
  return m[1]!;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** A web stream as an async iterable that stops with the signal's reason. */
async function* streamOf(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  const onAbort = () => {
    reader.cancel(signal.reason).catch(() => {});
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      signal.throwIfAborted();
      const { done, value } = await reader.read();
      signal.throwIfAborted();
      if (done) return;
      yield value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

/** ENOSPC/EDQUOT → ResourceExhaustedError; anything else unchanged. */
export function diskError(err: unknown, root: string): unknown {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new ResourceExhaustedError(`the disk holding the image store ${root} is full`, {
      cause: err,
      hint: "free space under data_dir (vmm image rm unused images) and pull again",
    });
  }
  return err;
}

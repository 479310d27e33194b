/**
 * A snapshot being written: `<data_dir>/snapshots/.tmp-<id>/`. Nothing in it
 * is visible in the catalog until {@link PendingSnapshot.commit} renames the
 * directory to `<id>/`; a crash before that leaves only a `.tmp-*` dir, which
 * the next `SnapshotCatalog.open` removes. `await using` aborts it if it was
 * not committed.
 */
import { chmod, realpath, rename, rm, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { AlreadyExistsError, FailedPreconditionError } from "../errors.js";
import { fsyncDir, fsyncFile, writeFileAtomic } from "../internal/atomic-file.js";
import { sha256File } from "../internal/sha256-file.js";
import { mapDiskError } from "../storage/disk-errors.js";
import { type LinkMethod, linkOrClone } from "../storage/link-or-clone.js";
import { type CloneMode, type CloneResult, cloneFile } from "../storage/storage.js";
import {
  SNAPSHOT_DATA_FILES,
  SNAPSHOT_FILES,
  type SnapshotDataFile,
  type SnapshotFileInfo,
  type SnapshotMeta,
} from "./snapshot-meta.js";

/** Absolute paths of a snapshot's data files. */
export type SnapshotFilePaths = { readonly [K in SnapshotDataFile]: string };

/** @private the catalog's side of a pending snapshot. */
export interface PendingSnapshotHost {
  /** Final directory of the entry. */
  finalDir: string;
  /** Parent of both dirs, fsync'ed after the rename. */
  snapshotsDir: string;
  /** Registers the committed entry (called once, after the rename). */
  committed(meta: SnapshotMeta): Promise<void>;
  /** Forgets the pending id (commit or abort). */
  closed(): void;
}

type PendingState = "open" | "committing" | "committed" | "aborted";

/** A snapshot under construction; see the module comment. */
export class PendingSnapshot implements AsyncDisposable {
  /** Snapshot id (final directory name). */
  readonly id: string;
  /** Absolute path of the temp directory. */
  readonly dir: string;
  /** Absolute paths of the data files inside the temp directory. */
  readonly paths: SnapshotFilePaths;
  readonly #meta: Omit<SnapshotMeta, "files">;
  readonly #host: PendingSnapshotHost;
  #state: PendingState = "open";
  #committing: Promise<SnapshotMeta> | undefined;

  /** @private created by SnapshotCatalog.beginSnapshot. */
  constructor(dir: string, meta: Omit<SnapshotMeta, "files">, host: PendingSnapshotHost) {
    this.id = meta.id;
    this.dir = dir;
    this.#meta = meta;
    this.#host = host;
    this.paths = Object.freeze({
      vmstate: join(dir, SNAPSHOT_FILES.vmstate),
      mem: join(dir, SNAPSHOT_FILES.mem),
      rootfs: join(dir, SNAPSHOT_FILES.rootfs),
    });
  }

  /** "open" until committed or aborted. */
  get state(): PendingState {
    return this.#state;
  }

  /**
   * Paths of the vmstate and memory files relative to `fromDir` (a sandbox
   * dir = Firecracker's cwd), for `PUT /snapshot/create`, computed from real
   * paths so symlinked directories do not break `..`. Returns undefined when
   * `fromDir` is on another filesystem: then let Firecracker write into its
   * own dir and {@link adoptFile} the results (a rename needs one filesystem,
   * and so do the hard links Restore makes later).
   */
  async relativePathsFrom(fromDir: string): Promise<{ vmstate: string; mem: string } | undefined> {
    const [from, to] = await Promise.all([realpath(fromDir), realpath(this.dir)]);
    const [a, b] = await Promise.all([stat(from), stat(to)]);
    if (a.dev !== b.dev) return undefined;
    return {
      vmstate: relative(from, join(to, SNAPSHOT_FILES.vmstate)),
      mem: relative(from, join(to, SNAPSHOT_FILES.mem)),
    };
  }

  /**
   * Moves a file Firecracker wrote elsewhere into the snapshot as `name`:
   * rename when on the same filesystem (the source disappears), else hard link
   * or reflink (the source stays; the caller removes it). Never a full copy.
   */
  async adoptFile(srcPath: string, name: SnapshotDataFile): Promise<"rename" | LinkMethod> {
    this.#assertOpen("adoptFile");
    const dst = this.paths[name];
    try {
      await rename(srcPath, dst);
      return "rename";
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    }
    return linkOrClone(srcPath, dst);
  }

  /**
   * Clones the sandbox's writable disk `srcPath` into the snapshot (while the
   * VM is paused: Firecracker does not flush disks). Errors as in `cloneFile`.
   */
  addRootfs(srcPath: string, mode: CloneMode, signal?: AbortSignal): Promise<CloneResult> {
    this.#assertOpen("addRootfs");
    return cloneFile(srcPath, this.paths.rootfs, mode, signal);
  }

  /**
   * Seals the snapshot: checks the three data files exist, hashes them
   * (SHA-256, one worker thread per file, in parallel), fsyncs them, writes
   * meta.json atomically, renames `.tmp-<id>` → `<id>` and fsyncs the parent.
   * Returns the meta. After a failure the snapshot stays open (dispose or
   * `abort()` it).
   */
  async commit(signal?: AbortSignal): Promise<SnapshotMeta> {
    this.#assertOpen("commit");
    this.#state = "committing";
    const p = this.#commit(signal);
    this.#committing = p;
    return p;
  }

  async #commit(signal: AbortSignal | undefined): Promise<SnapshotMeta> {
    let renamed = false;
    try {
      // Checked in a fixed order before any hashing starts: the error names the first missing
      // file, not whichever failed first, and no hash is left running behind a failed commit.
      const sizes: number[] = [];
      for (const f of SNAPSHOT_DATA_FILES) sizes.push(await this.#checkFile(f));
      const infos = await Promise.all(
        SNAPSHOT_DATA_FILES.map((f, i) => this.#sealFile(f, sizes[i]!, signal)),
      );
      const files = Object.fromEntries(SNAPSHOT_DATA_FILES.map((f, i) => [f, infos[i]])) as Record<
        SnapshotDataFile,
        SnapshotFileInfo
      >;
      const meta: SnapshotMeta = { ...this.#meta, files };
      signal?.throwIfAborted();
      await writeFileAtomic(
        join(this.dir, SNAPSHOT_FILES.meta),
        `${JSON.stringify(meta, null, 2)}\n`,
      );
      try {
        await rename(this.dir, this.#host.finalDir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EEXIST" || code === "ENOTEMPTY") {
          throw new AlreadyExistsError(`snapshot ${this.id} already exists`);
        }
        throw err;
      }
      renamed = true;
      this.#state = "committed";
      this.#host.closed();
      await this.#host.committed(meta);
      await fsyncDir(this.#host.snapshotsDir);
      return meta;
    } catch (err) {
      if (!renamed) this.#state = "open";
      throw mapDiskError(err, `committing snapshot ${this.id}`);
    }
  }

  /**
   * Removes the temp directory. Idempotent; a no-op after commit. While a
   * commit is in flight, waits for it and aborts only if it failed.
   */
  async abort(): Promise<void> {
    if (this.#state === "committing") await this.#committing?.catch(() => {});
    if (this.#state === "committed" || this.#state === "aborted") return;
    this.#state = "aborted";
    try {
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      this.#host.closed();
    }
  }

  /** Aborts unless committed. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.abort();
  }

  /** The file's size; FailedPreconditionError if it is missing or not a regular file. */
  async #checkFile(name: SnapshotDataFile): Promise<number> {
    const path = this.paths[name];
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      throw new FailedPreconditionError(
        `cannot commit snapshot ${this.id}: ${SNAPSHOT_FILES[name]} is missing`,
        {
          hint: "write vmstate and mem (Firecracker PUT /snapshot/create) and call addRootfs before commit",
        },
      );
    }
    if (!st.isFile()) {
      throw new FailedPreconditionError(
        `cannot commit snapshot ${this.id}: ${SNAPSHOT_FILES[name]} is not a regular file`,
      );
    }
    // Firecracker wrote vmstate and mem with its own umask (0644 is common): guest memory is owner-only.
    if ((st.mode & 0o077) !== 0) await chmod(path, st.mode & 0o700);
    return st.size;
  }

  async #sealFile(
    name: SnapshotDataFile,
    size: number,
    signal?: AbortSignal,
  ): Promise<SnapshotFileInfo> {
    const path = this.paths[name];
    const [digest] = await Promise.all([sha256File(path, signal), fsyncFile(path)]);
    if (digest.size !== size) {
      throw new FailedPreconditionError(
        `cannot commit snapshot ${this.id}: ${SNAPSHOT_FILES[name]} changed size while being hashed (${size} → ${digest.size} bytes)`,
      );
    }
    return { size: digest.size, sha256: digest.sha256 };
  }

  #assertOpen(op: string): void {
    if (this.#state !== "open") {
      throw new FailedPreconditionError(
        `snapshot ${this.id}: ${op} after the snapshot was ${this.#state}`,
      );
    }
  }
}

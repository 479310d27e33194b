/**
 * The snapshot catalog: `<data_dir>/snapshots/<id>/{vmstate,mem,rootfs.ext4,meta.json}`.
 *
 * Invariants:
 * - An entry appears on disk only by renaming a complete `.tmp-<id>/` (data
 *   files and meta.json fsync'ed) to `<id>/`, and disappears only by renaming
 *   it to `.<id>.deleting-<rand>/` first. Dot-names are never entries.
 * - Committed entries are never modified. The in-memory map is a cache of the
 *   directory, loaded by `open()`.
 * - Entries that fail a check (meta.json missing/corrupt, newer format, other
 *   Firecracker version, missing file, size or checksum mismatch) stay listed
 *   as `unusable` with a reason; they are never used and never deleted
 *   automatically (an operator deletes them).
 * - Operations on one id (commit, verify, delete) run one at a time.
 *
 * Integrity checks: sizes are checked at open and again on every
 * `usableOrThrow` (three stats); SHA-256 checksums (~1.6 s per GiB per core)
 * are checked by `verify(id)` and, unless disabled, by one background pass
 * after `open()`, one file at a time.
 */
import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../errors.js";
import { isDeletingName, removeDirAtomic, removeMatching } from "../internal/atomic-delete.js";
import { readJsonFile } from "../internal/atomic-file.js";
import { generateId, isValidId, validateId } from "../internal/ids.js";
import { KeyedMutex } from "../internal/keyed-mutex.js";
import { type Logger, silentLogger } from "../internal/logger.js";
import { sha256File } from "../internal/sha256-file.js";
import { sandboxesDir } from "../storage/sandbox-dir.js";
import { PendingSnapshot, type SnapshotFilePaths } from "./pending-snapshot.js";
import {
  parseSnapshotMeta,
  SNAPSHOT_DATA_FILES,
  SNAPSHOT_FILES,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotMeta,
  type SnapshotSpec,
} from "./snapshot-meta.js";

/** A catalog entry that passed every check so far. */
export interface UsableSnapshot {
  readonly state: "usable";
  readonly id: string;
  /** Absolute path of the entry's directory. */
  readonly dir: string;
  readonly meta: SnapshotMeta;
  readonly paths: SnapshotFilePaths;
}

/** A catalog entry that must not be used; `reason` says why. */
export interface UnusableSnapshot {
  readonly state: "unusable";
  readonly id: string;
  readonly dir: string;
  /** Undefined when meta.json is missing or corrupt. */
  readonly meta: SnapshotMeta | undefined;
  readonly paths: SnapshotFilePaths;
  readonly reason: string;
}

/** One catalog entry. */
export type SnapshotEntry = UsableSnapshot | UnusableSnapshot;

/** Options of {@link SnapshotCatalog.open}. */
export interface SnapshotCatalogOptions {
  /** The daemon's data_dir; the catalog lives in `<dataDir>/snapshots`. */
  dataDir: string;
  /** Version of the Firecracker binary in use ("1.14.2" or "v1.14.2"). */
  firecrackerVersion: string;
  /** Default: silent. */
  logger?: Logger;
  /** Checksum every usable entry in the background after open. Default true. */
  verifyInBackground?: boolean;
}

/** Filter of {@link SnapshotCatalog.list}. */
export interface ListSnapshotsFilter {
  /** Only snapshots of this sandbox. */
  originSandboxId?: string;
  /** Only snapshots carrying all these labels with these values. */
  labels?: Record<string, string>;
  /** Include hidden (golden) snapshots. Default false. */
  includeHidden?: boolean;
}

/** Options of {@link SnapshotCatalog.delete}. */
export interface DeleteSnapshotOptions {
  /**
   * Ids of the running sandboxes restored from snapshot `snapshotId`. Deletion
   * is refused while any of them lacks its own `mem` file in its sandbox dir
   * (a hard link to the catalog's memory file, or its own reflink clone).
   */
  usersOf: (snapshotId: string) => Iterable<string>;
}

/** Outcome of {@link SnapshotCatalog.delete}. */
export interface DeleteSnapshotResult {
  /** Sandboxes whose hard link keeps the memory file's blocks allocated until they exit. */
  memoryHeldBy: string[];
}

/** Outcome of {@link SnapshotCatalog.verify}. */
export type VerifyResult = { ok: true } | { ok: false; reason: string };

/** What `open()` found. */
export interface CatalogOpenReport {
  /** `.tmp-*` and `.*.deleting-*` names removed. */
  removedLeftovers: string[];
  /** Entries marked unusable, with reasons. */
  unusable: { id: string; reason: string }[];
  /** Names in the directory that are not entries (not a valid id, or not a directory). */
  ignored: string[];
}

const TMP_PREFIX = ".tmp-";

/** The snapshot catalog; see the module comment. Obtain with {@link SnapshotCatalog.open}. */
export class SnapshotCatalog {
  /** Absolute path of `<dataDir>/snapshots`. */
  readonly dir: string;
  /** What `open()` cleaned up and found unusable. */
  readonly openReport: CatalogOpenReport;
  readonly #dataDir: string;
  readonly #fcVersion: string;
  readonly #log: Logger;
  readonly #entries = new Map<string, SnapshotEntry>();
  readonly #pending = new Set<string>();
  readonly #locks = new KeyedMutex();
  readonly #closing = new AbortController();
  #background: Promise<void> = Promise.resolve();

  private constructor(options: SnapshotCatalogOptions, report: CatalogOpenReport) {
    this.#dataDir = options.dataDir;
    this.dir = join(options.dataDir, "snapshots");
    this.#fcVersion = normalizeVersion(options.firecrackerVersion);
    this.#log = options.logger ?? silentLogger;
    this.openReport = report;
  }

  /**
   * Opens (creating if needed) the catalog: removes leftovers of interrupted
   * snapshots and deletions (logged), loads and checks every entry, and starts
   * the background checksum pass unless disabled.
   */
  static async open(options: SnapshotCatalogOptions): Promise<SnapshotCatalog> {
    const report: CatalogOpenReport = { removedLeftovers: [], unusable: [], ignored: [] };
    const catalog = new SnapshotCatalog(options, report);
    await mkdir(catalog.dir, { recursive: true, mode: 0o700 });
    report.removedLeftovers = await removeMatching(
      catalog.dir,
      (n) => n.startsWith(TMP_PREFIX) || isDeletingName(n),
    );
    for (const name of report.removedLeftovers) {
      catalog.#log.warn(
        { dir: catalog.dir, name },
        "removed leftover of an interrupted snapshot or deletion",
      );
    }
    const dirents = await readdir(catalog.dir, { withFileTypes: true });
    for (const d of dirents.sort((a, b) => a.name.localeCompare(b.name))) {
      if (!d.isDirectory() || !isValidId("snapshot_id", d.name)) {
        report.ignored.push(d.name);
        catalog.#log.warn(
          { dir: catalog.dir, name: d.name },
          "ignoring entry that is not a snapshot directory",
        );
        continue;
      }
      const entry = await catalog.#load(d.name);
      catalog.#entries.set(entry.id, entry);
      if (entry.state === "unusable") {
        report.unusable.push({ id: entry.id, reason: entry.reason });
        catalog.#log.warn({ snapshotId: entry.id, reason: entry.reason }, "snapshot unusable");
      }
    }
    catalog.#log.info(
      {
        entries: catalog.#entries.size,
        unusable: report.unusable.length,
        removed: report.removedLeftovers.length,
      },
      "snapshot catalog opened",
    );
    if (options.verifyInBackground ?? true) catalog.#background = catalog.#verifyAll();
    return catalog;
  }

  /**
   * Starts a snapshot: validates `spec`, reserves its id and creates the temp
   * dir `.tmp-<id>/`. Errors: InvalidArgumentError (field named),
   * AlreadyExistsError for an id in use.
   */
  async beginSnapshot(spec: SnapshotSpec): Promise<PendingSnapshot> {
    const id =
      spec.id === undefined
        ? generateId("snap")
        : validateId("snapshot_id", spec.id, "snapshot_id");
    validateId("snapshot_name", spec.name, "name");
    validateId("sandbox_id", spec.originSandboxId, "sandbox_id");
    if (this.#entries.has(id) || this.#pending.has(id)) {
      throw new AlreadyExistsError(`snapshot ${id} already exists`);
    }
    const meta: Omit<SnapshotMeta, "files"> = {
      formatVersion: SNAPSHOT_FORMAT_VERSION,
      id,
      name: spec.name,
      originSandboxId: spec.originSandboxId,
      labels: { ...(spec.labels ?? {}) },
      createdAt: new Date().toISOString(),
      kernel: spec.kernel,
      rootfsBase: spec.rootfsBase,
      bootArgs: spec.bootArgs,
      vcpus: spec.vcpus,
      memoryMib: spec.memoryMib,
      networkMode: spec.networkMode,
      guestNetwork: spec.guestNetwork,
      firecrackerVersion: this.#fcVersion,
      hidden: spec.hidden ?? false,
      ...(spec.goldenKey === undefined ? {} : { goldenKey: spec.goldenKey }),
      ...(spec.networkPolicy === undefined ? {} : { networkPolicy: spec.networkPolicy }),
      ...(spec.image === undefined ? {} : { image: spec.image }),
    };
    this.#pending.add(id);
    const tmp = join(this.dir, `${TMP_PREFIX}${id}`);
    try {
      await mkdir(tmp, { mode: 0o700 });
    } catch (err) {
      this.#pending.delete(id);
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new AlreadyExistsError(`snapshot ${id} is already being written`);
      }
      throw err;
    }
    return new PendingSnapshot(tmp, meta, {
      finalDir: join(this.dir, id),
      snapshotsDir: this.dir,
      committed: (m) =>
        this.#locks.run(id, async () => {
          this.#entries.set(id, {
            state: "usable",
            id,
            dir: join(this.dir, id),
            meta: m,
            paths: this.#paths(id),
          });
          this.#log.info({ snapshotId: id, name: m.name }, "snapshot committed");
        }),
      closed: () => this.#pending.delete(id),
    });
  }

  /** Entries matching `filter`, oldest first. See docs for unusable entries without meta. */
  list(filter: ListSnapshotsFilter = {}): SnapshotEntry[] {
    const wanted = Object.entries(filter.labels ?? {});
    const out: SnapshotEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.meta === undefined) {
        if (filter.originSandboxId === undefined && wanted.length === 0) out.push(e);
        continue;
      }
      if (e.meta.hidden && !filter.includeHidden) continue;
      if (filter.originSandboxId !== undefined && e.meta.originSandboxId !== filter.originSandboxId)
        continue;
      if (!wanted.every(([k, v]) => e.meta?.labels[k] === v)) continue;
      out.push(e);
    }
    return out.sort(
      (a, b) =>
        (a.meta?.createdAt ?? "").localeCompare(b.meta?.createdAt ?? "") ||
        a.id.localeCompare(b.id),
    );
  }

  /** Usable entries with this golden key, newest first (hidden ones included). */
  findGolden(goldenKey: string): UsableSnapshot[] {
    return this.list({ includeHidden: true })
      .filter((e): e is UsableSnapshot => e.state === "usable" && e.meta.goldenKey === goldenKey)
      .reverse();
  }

  /** The entry `id`. InvalidArgumentError for a malformed id, NotFoundError if absent. */
  get(id: string): SnapshotEntry {
    validateId("snapshot_id", id, "snapshot_id");
    const e = this.#entries.get(id);
    if (e === undefined) throw new NotFoundError("snapshot", id);
    return e;
  }

  /**
   * The entry `id` if usable, after re-checking that its files exist with the
   * recorded sizes (three stats; no checksums). Throws NotFoundError, or
   * FailedPreconditionError with the reason (the entry is then marked unusable).
   */
  async usableOrThrow(id: string): Promise<UsableSnapshot> {
    const e = this.get(id);
    if (e.state === "unusable") throw unusableError(e);
    const problem = await checkFiles(e.meta, e.paths);
    if (problem !== undefined) throw unusableError(this.#markUnusable(e, problem));
    return e;
  }

  /**
   * Recomputes the SHA-256 of the entry's three files (in parallel, on worker
   * threads) and compares sizes and checksums with meta.json. A mismatch marks
   * the entry unusable (in memory: the next open re-checks). NotFoundError if absent.
   */
  async verify(id: string, signal?: AbortSignal): Promise<VerifyResult> {
    this.get(id);
    return this.#locks.run(id, () => this.#verifyLocked(id, signal));
  }

  /**
   * Deletes the entry `id` (atomic rename, then removal), freeing its disk
   * space except blocks still referenced by hard links or reflinks elsewhere.
   * Refused with FailedPreconditionError while a sandbox listed by
   * `options.usersOf(id)` has no `mem` of its own in its sandbox dir (it would
   * then be mapping the catalog's file directly). Unusable entries can be
   * deleted. NotFoundError if absent.
   */
  async delete(id: string, options: DeleteSnapshotOptions): Promise<DeleteSnapshotResult> {
    this.get(id);
    return this.#locks.run(id, async () => {
      const e = this.#entries.get(id);
      if (e === undefined) throw new NotFoundError("snapshot", id);
      const memoryHeldBy: string[] = [];
      let catalogMem: Awaited<ReturnType<typeof stat>> | undefined;
      try {
        catalogMem = await stat(e.paths.mem);
      } catch {
        catalogMem = undefined; // nothing left to protect
      }
      if (catalogMem !== undefined) {
        for (const sandboxId of options.usersOf(id)) {
          const own = join(sandboxesDir(this.#dataDir), sandboxId, SNAPSHOT_FILES.mem);
          let st: Awaited<ReturnType<typeof stat>>;
          try {
            st = await stat(own);
          } catch {
            throw new FailedPreconditionError(
              `snapshot ${id} is in use: sandbox ${sandboxId} runs from it and has no memory file of its own`,
              { hint: `stop sandbox ${sandboxId} first, then delete the snapshot` },
            );
          }
          if (st.dev === catalogMem.dev && st.ino === catalogMem.ino) memoryHeldBy.push(sandboxId);
        }
      }
      await removeDirAtomic(e.dir);
      this.#entries.delete(id);
      this.#log.info({ snapshotId: id, memoryHeldBy }, "snapshot deleted");
      return { memoryHeldBy };
    });
  }

  /** Stops the background checksum pass and waits for it. */
  async close(): Promise<void> {
    this.#closing.abort(new Error("snapshot catalog closed"));
    await this.#background;
  }

  /** Resolves when the background checksum pass started by open() is over. */
  backgroundVerification(): Promise<void> {
    return this.#background;
  }

  async #verifyAll(): Promise<void> {
    for (const id of [...this.#entries.keys()]) {
      if (this.#closing.signal.aborted) return;
      if (this.#entries.get(id)?.state !== "usable") continue;
      try {
        await this.#locks.run(id, () => this.#verifyLocked(id, this.#closing.signal, true));
      } catch (err) {
        if (this.#closing.signal.aborted) return;
        this.#log.error({ snapshotId: id, err }, "background snapshot verification failed");
      }
    }
  }

  async #verifyLocked(
    id: string,
    signal: AbortSignal | undefined,
    sequential = false,
  ): Promise<VerifyResult> {
    const e = this.#entries.get(id);
    if (e === undefined) throw new NotFoundError("snapshot", id);
    if (e.meta === undefined)
      return { ok: false, reason: e.state === "unusable" ? e.reason : "no meta" };
    const meta = e.meta;
    const hash = async (f: (typeof SNAPSHOT_DATA_FILES)[number]): Promise<string | undefined> => {
      let d: Awaited<ReturnType<typeof sha256File>>;
      try {
        d = await sha256File(e.paths[f], signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        return `${SNAPSHOT_FILES[f]} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`;
      }
      const want = meta.files[f];
      if (d.size !== want.size)
        return `${SNAPSHOT_FILES[f]} is ${d.size} bytes, meta.json says ${want.size}`;
      if (d.sha256 !== want.sha256) {
        return `${SNAPSHOT_FILES[f]} checksum mismatch (sha256 ${d.sha256}, meta.json says ${want.sha256})`;
      }
      return undefined;
    };
    const problems: (string | undefined)[] = [];
    if (sequential) for (const f of SNAPSHOT_DATA_FILES) problems.push(await hash(f));
    else problems.push(...(await Promise.all(SNAPSHOT_DATA_FILES.map(hash))));
    const problem = problems.find((p) => p !== undefined);
    if (problem === undefined) {
      if (e.state === "unusable") return { ok: false, reason: e.reason };
      return { ok: true };
    }
    const current = this.#entries.get(id);
    if (current !== undefined) this.#markUnusable(current, problem);
    return { ok: false, reason: problem };
  }

  #markUnusable(e: SnapshotEntry, reason: string): UnusableSnapshot {
    const u: UnusableSnapshot = {
      state: "unusable",
      id: e.id,
      dir: e.dir,
      meta: e.meta,
      paths: e.paths,
      reason,
    };
    if (this.#entries.has(e.id)) this.#entries.set(e.id, u);
    this.#log.warn({ snapshotId: e.id, reason }, "snapshot marked unusable");
    return u;
  }

  #paths(id: string): SnapshotFilePaths {
    const dir = join(this.dir, id);
    return Object.freeze({
      vmstate: join(dir, SNAPSHOT_FILES.vmstate),
      mem: join(dir, SNAPSHOT_FILES.mem),
      rootfs: join(dir, SNAPSHOT_FILES.rootfs),
    });
  }

  async #load(id: string): Promise<SnapshotEntry> {
    const dir = join(this.dir, id);
    const paths = this.#paths(id);
    const unusable = (reason: string, meta?: SnapshotMeta): UnusableSnapshot => ({
      state: "unusable",
      id,
      dir,
      meta,
      paths,
      reason,
    });
    let meta: SnapshotMeta;
    try {
      meta = parseSnapshotMeta(await readJsonFile(join(dir, SNAPSHOT_FILES.meta)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return unusable("meta.json is missing");
      // The message of a read error names the host path: keep the errno, or the parse error.
      const cause = (err as Error).cause as Error | undefined;
      const why = code ?? (cause ? `not valid JSON (${cause.message})` : (err as Error).message);
      return unusable(`meta.json is unreadable or corrupt: ${why}`);
    }
    if (meta.id !== id)
      return unusable(`meta.json names snapshot ${meta.id}, but its directory is ${id}`, meta);
    if (meta.formatVersion !== SNAPSHOT_FORMAT_VERSION) {
      return unusable(
        `meta.json format ${meta.formatVersion} is not supported (this daemon reads format ${SNAPSHOT_FORMAT_VERSION})`,
        meta,
      );
    }
    const theirs = normalizeVersion(meta.firecrackerVersion);
    if (theirs !== this.#fcVersion) {
      return unusable(
        `snapshot taken by Firecracker v${theirs}; this daemon runs v${this.#fcVersion}; snapshots are not portable across versions`,
        meta,
      );
    }
    const problem = await checkFiles(meta, paths);
    if (problem !== undefined) return unusable(problem, meta);
    return { state: "usable", id, dir, meta, paths };
  }
}

function normalizeVersion(v: string): string {
  return v.trim().replace(/^v/i, "");
}

async function checkFiles(
  meta: SnapshotMeta,
  paths: SnapshotFilePaths,
): Promise<string | undefined> {
  for (const f of SNAPSHOT_DATA_FILES) {
    let size: number;
    try {
      const st = await stat(paths[f]);
      if (!st.isFile()) return `${SNAPSHOT_FILES[f]} is not a regular file`;
      size = st.size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === "ENOENT"
        ? `${SNAPSHOT_FILES[f]} is missing`
        : `${SNAPSHOT_FILES[f]} cannot be read (${code})`;
    }
    if (size !== meta.files[f].size) {
      return `${SNAPSHOT_FILES[f]} is ${size} bytes, meta.json says ${meta.files[f].size} (truncated or replaced)`;
    }
  }
  return undefined;
}

function unusableError(e: UnusableSnapshot): FailedPreconditionError {
  return new FailedPreconditionError(`snapshot ${e.id} is unusable: ${e.reason}`, {
    hint: `delete it with DeleteSnapshot (operators find it under data_dir/snapshots/${e.id})`,
  });
}

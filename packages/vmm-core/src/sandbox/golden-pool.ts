import { createHash } from "node:crypto";
import type { Logger } from "../internal/index.js";
import type { SnapshotCatalog, SnapshotEntry, UsableSnapshot } from "../snapshot/index.js";
import { type ResolvedImage, sameImageIdentity } from "../storage/index.js";
import { stableKey } from "./stable-key.js";
import type { NetworkMode } from "./types.js";

/** The golden snapshot pool's budget (config `[golden]`). */
export interface GoldenOptions {
  /** Golden snapshots kept at once; the least recently used beyond it are deleted. */
  readonly maxSnapshots: number;
  /** Golden builds (a hidden boot + checkpoint) running at once. */
  readonly maxConcurrentBuilds: number;
}

/** What a golden snapshot is pre-booted with (besides its kernel and rootfs). */
export interface GoldenSpec {
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly bootArgs: string;
  readonly network: NetworkMode;
}

/**
 * The manager's side of a build: a hidden sandbox (not listed, no events,
 * outside `[limits]`) booted, checkpointed into a hidden snapshot, removed.
 */
export interface GoldenBuilder {
  /** Boots hidden sandbox `id`; resolves once it is ready, throws saying why it is not. */
  boot(id: string, spec: GoldenSpec, kernel: ResolvedImage, rootfs: ResolvedImage): Promise<void>;
  /** Checkpoints it into a hidden snapshot tagged with `goldenKey`; resolves with the snapshot id. */
  checkpoint(id: string, goldenKey: string): Promise<string>;
  /** Removes the hidden sandbox (whatever its state). */
  remove(id: string): Promise<void>;
  deleteSnapshot(snapshotId: string): Promise<void>;
}

/** Options of {@link GoldenPool}. */
export interface GoldenPoolOptions {
  readonly budget: GoldenOptions;
  /** The catalog once open (lookups before then find nothing: the Create boots). */
  readonly catalog: () => SnapshotCatalog | undefined;
  readonly builder: GoldenBuilder;
  /** Part of the key: a golden snapshot is only good for the agent port it booted with. */
  readonly agentPort: number;
  /** Keeps a background build until it settles (the manager's close awaits them). */
  readonly track: (p: Promise<unknown>) => void;
  readonly log: Logger;
}

/** A build that failed is not retried for this long (a broken image must not boot in a loop). */
const RETRY_MS = 60_000;

/**
 * Golden snapshots: one pre-booted snapshot per spec in use (kernel and
 * rootfs by path and file identity, size, boot args, network mode), which
 * Create restores instead of booting.
 *
 * The pool has its own budget and never touches a user's: builds run in the
 * background (no Create waits for one), at most `maxConcurrentBuilds` at once,
 * a failed spec is not rebuilt for a minute, and at most `maxSnapshots` are
 * kept — the least recently used go, so specs in use do not evict each other.
 */
export class GoldenPool {
  readonly #opts: GoldenPoolOptions;
  /** Keys being built now. */
  readonly #building = new Set<string>();
  readonly #failedAt = new Map<string, number>();
  /** When each golden snapshot was last built or served a Create, as a sequence number. */
  readonly #usedAt = new Map<string, number>();
  #uses = 0;
  #closed = false;

  constructor(options: GoldenPoolOptions) {
    this.#opts = options;
  }

  /** The key of a spec, and its golden snapshot when one is ready. */
  lookup(
    spec: GoldenSpec,
    kernel: ResolvedImage,
    rootfs: ResolvedImage,
  ): { key?: string; snapshot?: UsableSnapshot } {
    const catalog = this.#opts.catalog();
    if (!catalog || this.#opts.budget.maxSnapshots === 0) return {};
    const key = createHash("sha256")
      .update(
        stableKey({
          kernel: [kernel.path, kernel.identity],
          rootfs: [rootfs.path, rootfs.identity],
          vcpus: spec.vcpus,
          memoryMib: spec.memoryMib,
          bootArgs: spec.bootArgs,
          network: spec.network,
          agentPort: this.#opts.agentPort,
        }),
      )
      .digest("hex")
      .slice(0, 32);
    const snapshot = catalog.findGolden(key)[0];
    return snapshot ? { key, snapshot } : { key };
  }

  /** Records that `snapshotId` just served a Create (it is evicted last). */
  used(snapshotId: string): void {
    this.#usedAt.set(snapshotId, ++this.#uses);
  }

  /** Starts building the golden snapshot of `key` in the background, within the budget. */
  ensure(key: string, spec: GoldenSpec, kernel: ResolvedImage, rootfs: ResolvedImage): void {
    if (this.#closed || this.#building.has(key)) return;
    if (this.#building.size >= this.#opts.budget.maxConcurrentBuilds) return; // a later Create starts it
    const failedAt = this.#failedAt.get(key);
    if (failedAt !== undefined && Date.now() - failedAt < RETRY_MS) return;
    this.#building.add(key);
    this.#opts.track(
      this.#build(key, spec, kernel, rootfs)
        .then(
          () => this.#failedAt.delete(key),
          (err: unknown) => {
            this.#failedAt.set(key, Date.now());
            this.#opts.log.warn({ err, goldenKey: key }, "golden snapshot build failed");
          },
        )
        .finally(() => this.#building.delete(key)),
    );
  }

  /** Starts no more builds (shutdown). */
  close(): void {
    this.#closed = true;
  }

  async #build(
    key: string,
    spec: GoldenSpec,
    kernel: ResolvedImage,
    rootfs: ResolvedImage,
  ): Promise<void> {
    const { builder, log } = this.#opts;
    const id = `golden-${key.slice(0, 16)}`;
    const started = performance.now();
    try {
      await builder.boot(id, spec, kernel, rootfs);
      const snapshotId = await builder.checkpoint(id, key);
      log.info(
        { goldenKey: key, snapshotId, ms: Math.round(performance.now() - started) },
        "golden snapshot ready",
      );
      this.used(snapshotId);
      await this.#evict(kernel, rootfs);
    } finally {
      await builder.remove(id).catch(() => {});
    }
  }

  /**
   * Keeps the pool within its budget after a build: goldens of an image whose
   * file changed since are useless and go; of the rest, the least recently
   * used beyond `maxSnapshots` go.
   */
  async #evict(kernel: ResolvedImage, rootfs: ResolvedImage): Promise<void> {
    const catalog = this.#opts.catalog();
    if (!catalog) return;
    const goldens = catalog
      .list({ includeHidden: true })
      .filter((e) => e.meta?.hidden && e.meta.goldenKey !== undefined);
    const stale = (e: SnapshotEntry) => {
      const m = e.meta;
      if (!m) return true;
      return (
        (m.kernel.path === kernel.path && !sameImageIdentity(m.kernel.identity, kernel.identity)) ||
        (m.rootfsBase.path === rootfs.path &&
          !sameImageIdentity(m.rootfsBase.identity, rootfs.identity))
      );
    };
    // Most recently used first; ones unused since this daemon started, newest first.
    const created = (e: SnapshotEntry) => (e.meta ? Date.parse(e.meta.createdAt) : 0);
    const kept = goldens
      .filter((e) => !stale(e))
      .sort(
        (a, b) =>
          (this.#usedAt.get(b.id) ?? 0) - (this.#usedAt.get(a.id) ?? 0) || created(b) - created(a),
      );
    const doomed = [...goldens.filter(stale), ...kept.slice(this.#opts.budget.maxSnapshots)];
    for (const e of doomed) {
      this.#usedAt.delete(e.id);
      await this.#opts.builder
        .deleteSnapshot(e.id)
        .catch((err: unknown) =>
          this.#opts.log.warn({ err, snapshotId: e.id }, "deleting a golden snapshot failed"),
        );
    }
  }
}

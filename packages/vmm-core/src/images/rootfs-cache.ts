/**
 * The cache of image rootfs files: `<data_dir>/images/rootfs/<hex>.ext4`,
 * one per manifest digest (`sha256:<hex>`), with `<hex>.json` beside it
 * saying what it was built with. A file is reused only when its record
 * matches the agent being injected now (a daemon upgrade with a new agent
 * rebuilds). Both are published by rename, ext4 first: a crash leaves either
 * nothing, an ext4 without record (rebuilt), or both. Work files start with a
 * dot (`.build-*` staging directories, `.tmp-*` images) and are removed at
 * the first build after a restart.
 */
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { readJsonFile, writeFileAtomic } from "../internal/index.js";

/** What a cached rootfs was built from. */
export interface RootfsCacheRecord {
  readonly formatVersion: 1;
  readonly manifestDigest: string;
  /** The reference it was first built for (informational). */
  readonly reference: string;
  /** SHA-256 (hex) of the injected agent. */
  readonly agentSha256: string;
  readonly sizeBytes: number;
  readonly builtAtMs: number;
  /** What the image had at /sbin/init (replaced by the agent). */
  readonly replacedInit?: string;
}

/** Paths and records of the rootfs cache directory. */
export class RootfsCache {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, "images", "rootfs");
  }

  /** `sha256:<hex>` → `<hex>`; throws on anything else (it becomes a file name). */
  static hex(manifestDigest: string): string {
    const m = /^sha256:([0-9a-f]{64})$/.exec(manifestDigest);
    if (!m?.[1]) throw new Error(`not a sha256 digest: ${manifestDigest}`);
    return m[1];
  }

  /** Path of the rootfs image of a manifest digest. */
  imagePath(manifestDigest: string): string {
    return join(this.dir, `${RootfsCache.hex(manifestDigest)}.ext4`);
  }

  recordPath(manifestDigest: string): string {
    return join(this.dir, `${RootfsCache.hex(manifestDigest)}.json`);
  }

  /** The record of a complete entry built with `agentSha256`, or undefined. */
  async usable(
    manifestDigest: string,
    agentSha256: string,
  ): Promise<RootfsCacheRecord | undefined> {
    const rec = (await readJsonFile(this.recordPath(manifestDigest)).catch(() => undefined)) as
      | RootfsCacheRecord
      | undefined;
    if (rec?.formatVersion !== 1 || rec.agentSha256 !== agentSha256) return undefined;
    if (rec.manifestDigest !== manifestDigest) return undefined;
    const st = await stat(this.imagePath(manifestDigest)).catch(() => undefined);
    return st?.isFile() && st.size === rec.sizeBytes ? rec : undefined;
  }

  /** Records a published image. */
  async commit(rec: RootfsCacheRecord): Promise<void> {
    await writeFileAtomic(this.recordPath(rec.manifestDigest), `${JSON.stringify(rec)}\n`);
  }

  /** Removes the entry of a manifest digest (record first: a half-removed entry is never reused). */
  async remove(manifestDigest: string): Promise<void> {
    await rm(this.recordPath(manifestDigest), { force: true });
    await rm(this.imagePath(manifestDigest), { force: true });
  }

  /** Removes work files of builds that a crash or restart cut short. */
  async removeLeftovers(): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((n) => n.startsWith(".build-") || n.startsWith(".tmp-"))
        .map((n) => rm(join(this.dir, n), { recursive: true, force: true })),
    );
  }
}

import { createHash, randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { link, mkdir, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CloneResult, DiskCloner } from "./storage.js";

/** Options of {@link openSpareCloner}. */
export interface SpareClonerOptions {
  /** Makes the clones (and every clone when no spare is at hand). */
  readonly inner: DiskCloner;
  /**
   * Where spares wait: on the filesystem of the sandboxes (a spare is handed
   * over by link + unlink). Emptied by {@link openSpareCloner}: spares do not
   * outlive the daemon.
   */
  readonly dir: string;
  /** Most spares kept at once (one per image, least recently used dropped first); 0 = none. */
  readonly maxSpares: number;
  /**
   * Making a spare starts this long after `prepare`, so the request that asked
   * for it is answered before the copy competes with it. Default 20 ms.
   */
  readonly delayMs?: number;
  /** Told when making a spare failed (the next clone of that image simply copies). */
  readonly onError?: (err: unknown, src: string) => void;
}

/** A {@link DiskCloner} that keeps a clone of recently used images ready. */
export interface SpareCloner extends DiskCloner {
  /** Stops making spares, waits for the one in progress, removes them all. */
  close(): Promise<void>;
  /** Spares ready to be handed out now (metrics). */
  spareCount(): number;
}

interface Spare {
  readonly path: string;
  /** The source's identity when the spare was made: a changed source makes it stale. */
  readonly identity: string;
  readonly result: CloneResult;
}

interface Entry {
  spare: Spare | undefined;
  /** Set while a spare of this source is being made. */
  making: Promise<void> | undefined;
  /** The source clones by reflink: nothing to gain from a spare. */
  cheap: boolean;
}

/**
 * Where a clone is a copy (ext4, tmpfs: no reflinks), copying a disk image on
 * the request path costs milliseconds per ten megabytes of data. This cloner
 * makes the next clone of an image in the background once it is told the image
 * will be cloned again ({@link DiskCloner.prepare}); the next `clone` of that
 * image takes the spare with a link and an unlink instead of copying. A spare
 * is handed out at most once, only while its source is unchanged (device,
 * inode, size, mtime, ctime), and is never shared: each clone owns its file.
 */
export async function openSpareCloner(options: SpareClonerOptions): Promise<SpareCloner> {
  const { inner, dir, maxSpares } = options;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Insertion order = least recently used first.
  const entries = new Map<string, Entry>();
  const lifetime = new AbortController();
  // One spare is made at a time: making them must not crowd out the requests.
  let queue: Promise<void> = Promise.resolve();

  const entryOf = (src: string): Entry => {
    let e = entries.get(src);
    if (e) entries.delete(src);
    e ??= { spare: undefined, making: undefined, cheap: false };
    entries.set(src, e);
    return e;
  };

  const drop = async (spare: Spare | undefined) => {
    if (spare) await rm(spare.path, { force: true });
  };

  const evictBeyondLimit = async () => {
    for (const [src, e] of entries) if (!e.spare && !e.making && !e.cheap) entries.delete(src);
    let held = [...entries.values()].filter((e) => e.spare || e.making).length;
    for (const [src, e] of entries) {
      if (held <= maxSpares) break;
      if (!e.spare) continue;
      const spare = e.spare;
      entries.delete(src);
      held--;
      await drop(spare);
    }
  };

  const make = (src: string, e: Entry) =>
    (queue = queue.then(async () => {
      await sleep(options.delayMs ?? 20);
      if (lifetime.signal.aborted || entries.get(src) !== e || e.spare) return;
      const path = join(
        dir,
        `${createHash("sha256").update(src).digest("hex").slice(0, 16)}-${randomBytes(4).toString("hex")}.img`,
      );
      try {
        const before = await stat(src);
        const result = await inner.clone(src, path, lifetime.signal);
        if (result.method === "reflink") {
          e.cheap = true;
          await rm(path, { force: true });
          return;
        }
        const spare = { path, identity: identityOf(before), result };
        // Discarded or closed meanwhile: nobody will take it.
        if (lifetime.signal.aborted || entries.get(src) !== e) await drop(spare);
        else e.spare = spare;
      } catch (err) {
        await rm(path, { force: true });
        if (!lifetime.signal.aborted) options.onError?.(err, src);
      }
    }));

  return {
    mode: inner.mode,

    async clone(src, dst, signal) {
      const e = entries.get(src);
      // Claimed before any await: two clones at once never get the same spare.
      const spare = e?.spare;
      if (e) e.spare = undefined;
      if (spare) {
        try {
          if (identityOf(await stat(src)) === spare.identity) {
            signal?.throwIfAborted();
            await link(spare.path, dst); // EEXIST if dst exists, like every clone
            // dst is in place: a leftover name in spares/ is never handed out again and goes at close.
            await unlink(spare.path).catch(() => {});
            return { ...spare.result, spare: true };
          }
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "EEXIST" || signal?.aborted) {
            await drop(spare);
            throw err;
          }
          // Anything else (a spare removed under us, EXDEV): copy as if there were none.
        }
        await drop(spare);
      }
      return inner.clone(src, dst, signal);
    },

    prepare(src) {
      if (maxSpares === 0 || inner.mode === "reflink" || lifetime.signal.aborted) {
        return Promise.resolve();
      }
      const e = entryOf(src);
      if (e.cheap || e.spare) return Promise.resolve();
      if (e.making) return e.making;
      const making = make(src, e)
        .then(evictBeyondLimit)
        .catch((err: unknown) => options.onError?.(err, src))
        .finally(() => {
          if (e.making === making) e.making = undefined;
        });
      e.making = making;
      return making;
    },

    async discard(src) {
      const e = entries.get(src);
      if (!e) return;
      entries.delete(src);
      await e.making;
      const spare = e.spare;
      e.spare = undefined;
      await drop(spare);
    },

    spareCount() {
      let n = 0;
      for (const e of entries.values()) if (e.spare) n++;
      return n;
    },

    async close() {
      lifetime.abort(new Error("the daemon is shutting down"));
      await queue;
      const spares = [...entries.values()].map((e) => e.spare);
      entries.clear();
      await Promise.all(spares.map(drop));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function identityOf(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

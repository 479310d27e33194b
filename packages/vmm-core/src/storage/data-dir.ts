/**
 * Owner-only data_dir: guest memory, disks, records and sockets of every
 * sandbox live below it, so nothing under it may be readable by group or
 * other. {@link prepareDataDir} creates a missing data_dir with mode 0700 and
 * tightens an existing one (and what an older daemon left with wider modes in
 * `sandboxes/`, `snapshots/`, `spares/`) instead of refusing to start: the
 * top directory at 0700 alone already shuts other users out.
 */
import type { Dirent } from "node:fs";
import { chmod, lstat, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";

/** What {@link prepareDataDir} did. */
export interface DataDirReport {
  /** data_dir did not exist and was created (0700). */
  created: boolean;
  /** Paths whose group/other permission bits were removed. */
  tightened: string[];
}

/** The subdirectories of data_dir the daemon owns (images_dir is the operator's). */
const OWNED_SUBDIRS = ["sandboxes", "snapshots", "spares"] as const;

/**
 * Creates `dataDir` (0700, parents too) or tightens it to owner-only, then
 * removes group/other bits from everything under its daemon-owned
 * subdirectories (symlinks are not followed; sockets are included).
 */
export async function prepareDataDir(dataDir: string): Promise<DataDirReport> {
  const created = (await mkdir(dataDir, { recursive: true, mode: 0o700 })) !== undefined;
  const tightened: string[] = [];
  await tighten(dataDir, tightened);
  for (const sub of OWNED_SUBDIRS) await tightenTree(join(dataDir, sub), tightened);
  return { created, tightened };
}

async function tighten(path: string, out: string[]): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined || st.isSymbolicLink() || (st.mode & 0o077) === 0) return;
  await chmod(path, st.mode & 0o700);
  out.push(path);
}

async function tightenTree(dir: string, out: string[]): Promise<void> {
  await tighten(dir, out);
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // absent, or not a directory
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await tightenTree(p, out);
    else if (!e.isSymbolicLink()) await tighten(p, out);
  }
}

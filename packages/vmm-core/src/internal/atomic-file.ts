/**
 * Atomic, durable small-file writes (containerd `pkg/atomicfile` pattern).
 *
 * Durability argument: the data goes to a temp file in the SAME directory
 * (so rename is atomic: same filesystem), is fsync'ed and closed, then renamed
 * over the target, and finally the directory is fsync'ed so the rename itself
 * survives a power loss. A reader therefore sees either the old or the new
 * content, never a prefix. Leftover temp files are dot-names
 * (`.<name>.tmp-<rand>`), which every scanner in vmm-core skips.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** File mode of the new file. Default 0o600 (owner-only: everything under data_dir is). */
  mode?: number;
  /**
   * fsync the file and its directory so the write survives a power loss.
   * Default true. Without it the write is still atomic (temp + rename) and
   * visible to every process at once, but an OS crash may lose it.
   */
  durable?: boolean;
}

/** Writes `data` to `path` atomically and (unless `durable: false`) durably (temp + fsync + rename + fsync dir). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, "wx", options.mode ?? 0o600);
  let renamed = false;
  try {
    try {
      await fh.writeFile(data);
      if (options.durable !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    if (options.durable !== false) await fsyncDir(dir);
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

/** fsyncs a directory so that entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a regular file's data and metadata. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Reads and parses a JSON file. Read errors pass through unchanged (so callers
 * can test `code === "ENOENT"`); a parse failure throws an Error naming the
 * file, with the SyntaxError as `cause`.
 */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

import { execFile, spawn } from "node:child_process";
import { open, rm, stat } from "node:fs/promises";
import { mapDiskError } from "./disk-errors.js";
import type { CloneResult } from "./storage.js";

let available: Promise<boolean> | undefined;

/**
 * Whether `cp` on PATH is GNU coreutils (asked once per process). Its
 * `--sparse=always` finds data with SEEK_DATA/SEEK_HOLE, so a mostly-empty
 * disk image copies in the time its data takes, not its apparent size, and it
 * runs outside the daemon's event loop.
 */
export function gnuCpAvailable(): Promise<boolean> {
  available ??= new Promise((resolve) => {
    execFile("cp", ["--version"], { timeout: 5000 }, (err, stdout) => {
      resolve(err === null && /GNU coreutils/.test(stdout));
    });
  });
  return available;
}

/**
 * Copies `src` to the new file `dst` with GNU `cp --sparse=always
 * --reflink=never`: holes stay holes and zero blocks become holes. `dst` is
 * created exclusively first (EEXIST if it exists), so the copy never
 * overwrites. `writtenBytes` is what the copy allocated. On failure or abort
 * `cp` is killed and `dst` removed.
 */
export async function copyWithGnuCp(
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<CloneResult> {
  signal?.throwIfAborted();
  // cp keeps the mode of an existing destination: the clone stays owner-only.
  await (await open(dst, "wx", 0o600)).close();
  try {
    await runCp(src, dst, signal);
    const out = await stat(dst);
    return { method: "copy", sizeBytes: out.size, writtenBytes: out.blocks * 512 };
  } catch (err) {
    await rm(dst, { force: true });
    throw mapDiskError(err, "copying a disk image");
  }
}

function runCp(src: string, dst: string, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("cp", ["--sparse=always", "--reflink=never", "--", src, dst], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      stderr = (stderr + s).slice(-4096);
    });
    const onAbort = () => child.kill("SIGKILL");
    signal?.addEventListener("abort", onAbort, { once: true });
    child.once("error", reject);
    child.once("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (code === 0) return resolve();
      if (signal?.aborted) return reject(signal.reason);
      reject(cpError(stderr.trim(), code, sig));
    });
  });
}

/** cp reports errno only as text: map the ones callers act on back to codes. */
function cpError(message: string, code: number | null, sig: NodeJS.Signals | null): Error {
  const err: NodeJS.ErrnoException = new Error(
    `cp ${sig ? `was killed by ${sig}` : `exited with ${code}`}: ${message || "no message"}`,
  );
  if (/No space left on device/.test(message)) err.code = "ENOSPC";
  else if (/Disk quota exceeded/.test(message)) err.code = "EDQUOT";
  else if (/No such file or directory/.test(message)) err.code = "ENOENT";
  return err;
}

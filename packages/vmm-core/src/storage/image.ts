/**
 * Resolving kernel and rootfs images named by requests.
 *
 * Trust rule: a request's `kernel`/`rootfs` is confined to the image roots
 * (`images_dir` and `storage.allowed_image_roots`); values from the daemon's
 * own configuration (`defaults.kernel`/`defaults.rootfs`) and paths the daemon
 * recorded itself (sandbox records, snapshot meta) are trusted and may live
 * elsewhere. Either way the result is a regular file outside /proc, /sys and
 * /dev.
 *
 * A confined value is resolved with realpath (every symlink followed) and the
 * real path must lie inside a root's real path and outside the daemon's
 * private directories; anything else fails with the one {@link imageRefused}
 * error, whose text depends only on the value typed, so a client cannot tell
 * an absent host file from a present one. The file is then opened with
 * O_NOFOLLOW | O_NONBLOCK (a FIFO cannot stall the open) and checked on the
 * descriptor; the identity comes from that descriptor.
 *
 * Limit: callers copy the returned real path later; swapping a file inside a
 * root between the check and the copy needs write access to that root, which
 * only the operator has.
 */
import { constants } from "node:fs";
import { lstat, open, realpath } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, relative, sep } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";

/**
 * A cheap identity of an image file, recorded in snapshots: if any field
 * differs later, the file was replaced or modified, and golden snapshots made
 * from it are stale.
 */
export interface ImageIdentity {
  /** Bytes. */
  size: number;
  /** Last modification time, ms since the epoch. */
  mtimeMs: number;
  /** Inode number. */
  ino: number;
}

/** A resolved read-only image. */
export interface ResolvedImage {
  /** Absolute real path (symlinks resolved): the file that was checked. */
  path: string;
  identity: ImageIdentity;
}

/** Options of {@link resolveImage}. */
export interface ResolveImageOptions {
  /**
   * Further directories absolute request paths may point into (config
   * `storage.allowed_image_roots`), absolute. Default none: only `imagesDir`.
   */
  allowedRoots?: readonly string[];
  /**
   * Directories no confined value may reach even when a root contains them,
   * except inside `imagesDir` (the daemon's data_dir: other sandboxes' disks,
   * snapshot memory). Default none.
   */
  privateDirs?: readonly string[];
  /**
   * The value comes from the daemon's configuration or its own records, not
   * from a request: it may lie outside the roots. Default false.
   */
  trusted?: boolean;
}

/** Host trees never used as images, whatever the roots say. */
export const FORBIDDEN_IMAGE_TREES: readonly string[] = ["/proc", "/sys", "/dev"];

/** Reports whether two identities denote the same, unmodified file. */
export function sameImageIdentity(a: ImageIdentity, b: ImageIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** True when `path` is `dir` or lies below it (both absolute and normalized). */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * The refusal of a value that is not an image under the roots. Its message
 * depends only on `field` and the value typed, never on what exists on the
 * host (no existence oracle).
 */
export function imageRefused(field: string, nameOrPath: string): InvalidArgumentError {
  return new InvalidArgumentError(
    field,
    `${JSON.stringify(nameOrPath)} is not an image under the allowed roots (images_dir, storage.allowed_image_roots)`,
    {
      hint: "name a regular file under images_dir (e.g. rootfs.ext4 or kernels/vmlinux), or an absolute path under a directory of storage.allowed_image_roots",
    },
  );
}

/**
 * Resolves a kernel or rootfs image given either as a name relative to
 * `imagesDir` (e.g. `ubuntu-24.04.ext4` or `kernels/vmlinux`; no `..`, `.` or
 * empty segments, no backslashes) or as an absolute path, under the rules of
 * the module comment, and returns its real path and identity.
 *
 * Errors name `field`: InvalidArgumentError for an empty value or NUL, and
 * {@link imageRefused} for anything outside the roots (confined values) or
 * under /proc, /sys, /dev; NotFoundError(`<field> image`, value) for a file
 * missing inside the roots; FailedPreconditionError for something inside the
 * roots that is not a readable regular file. Messages name the value typed,
 * not host paths (those go in `cause`).
 */
export async function resolveImage(
  imagesDir: string,
  nameOrPath: string,
  field: string,
  options: ResolveImageOptions = {},
): Promise<ResolvedImage> {
  if (typeof nameOrPath !== "string" || nameOrPath.length === 0) {
    throw new InvalidArgumentError(
      field,
      "must name an image (a file under images_dir or an absolute path)",
    );
  }
  if (nameOrPath.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL");
  const refused = () => imageRefused(field, nameOrPath);
  const trusted = options.trusted ?? false;
  const images = normalize(imagesDir);
  let path: string;
  if (isAbsolute(nameOrPath)) {
    path = normalize(nameOrPath);
  } else {
    const segments = nameOrPath.split("/");
    if (nameOrPath.includes("\\") || segments.some((s) => s === "" || s === "." || s === "..")) {
      throw refused();
    }
    path = join(images, nameOrPath);
  }
  if (FORBIDDEN_IMAGE_TREES.some((t) => isInside(path, t))) throw refused();
  const roots = [images, ...(options.allowedRoots ?? []).map((r) => normalize(r))];
  const privates = (options.privateDirs ?? []).map((d) => normalize(d));
  // Lexical check first: a value outside every root never touches the filesystem.
  if (!trusted && !allowed(path, roots, images, privates)) throw refused();
  const realRoots = trusted ? [] : await realPaths(roots);
  const realImages = trusted ? images : ((await realPaths([images]))[0] ?? images);
  const realPrivates = trusted ? [] : await realPaths(privates);
  const realAllowed = (p: string) =>
    !FORBIDDEN_IMAGE_TREES.some((t) => isInside(p, t)) &&
    (trusted || allowed(p, realRoots, realImages, realPrivates));

  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    // Missing: NOT_FOUND only where the nearest existing ancestor is itself allowed,
    // so a symlinked directory inside a root cannot probe the host.
    if (await ancestorAllowed(path, realAllowed)) {
      const e = new NotFoundError(`${field} image`, nameOrPath);
      (e as Error).cause = err;
      throw e;
    }
    throw refused();
  }
  if (!realAllowed(real)) throw refused();

  const lst = await lstat(real).catch(() => undefined);
  if (lst === undefined) throw new NotFoundError(`${field} image`, nameOrPath);
  if (!lst.isFile()) {
    throw new FailedPreconditionError(
      `${field}: image ${JSON.stringify(nameOrPath)} is not a regular file`,
    );
  }
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new FailedPreconditionError(
      `${field}: image ${JSON.stringify(nameOrPath)} is not readable by the daemon`,
      { cause: err, hint: "fix the file's permissions (the daemon needs read access)" },
    );
  }
  try {
    const st = await fh.stat();
    // Swapped between lstat and open: refuse rather than guess.
    if (!st.isFile() || st.ino !== lst.ino || st.dev !== lst.dev) {
      throw new FailedPreconditionError(
        `${field}: image ${JSON.stringify(nameOrPath)} changed while being opened; retry`,
      );
    }
    return { path: real, identity: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
  } finally {
    await fh.close();
  }
}

/** Inside a root, and not inside a private dir unless inside images. */
function allowed(
  path: string,
  roots: readonly string[],
  images: string,
  privates: readonly string[],
): boolean {
  if (!roots.some((r) => isInside(path, r))) return false;
  if (isInside(path, images)) return true;
  return !privates.some((d) => isInside(path, d));
}

/** Real paths of the directories that exist (a missing root contains nothing). */
async function realPaths(dirs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of dirs) {
    const r = await realpath(d).catch(() => undefined);
    if (r !== undefined) out.push(r);
  }
  return out;
}

async function ancestorAllowed(path: string, ok: (real: string) => boolean): Promise<boolean> {
  let p = dirname(path);
  for (;;) {
    const r = await realpath(p).catch(() => undefined);
    if (r !== undefined) return ok(r);
    const up = dirname(p);
    if (up === p) return false;
    p = up;
  }
}

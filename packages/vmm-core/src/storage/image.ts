import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { isAbsolute, join, normalize, relative, sep } from "node:path";
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
  /** Absolute, normalized path. */
  path: string;
  identity: ImageIdentity;
}

/** Reports whether two identities denote the same, unmodified file. */
export function sameImageIdentity(a: ImageIdentity, b: ImageIdentity): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/**
 * Resolves a kernel or rootfs image given either as an absolute path or as a
 * name relative to `imagesDir` (e.g. `ubuntu-24.04.ext4` or `kernels/vmlinux`;
 * no `..`, `.` or empty segments, no backslashes, no NUL). Checks it is an
 * existing, readable regular file (symlinks followed) and returns its absolute
 * path and identity.
 *
 * Errors name `field`: InvalidArgumentError for a malformed name,
 * NotFoundError("image", …) when missing, FailedPreconditionError when not a
 * regular file or not readable.
 */
export async function resolveImage(
  imagesDir: string,
  nameOrPath: string,
  field: string,
): Promise<ResolvedImage> {
  if (typeof nameOrPath !== "string" || nameOrPath.length === 0) {
    throw new InvalidArgumentError(
      field,
      "must name an image (a file under images/ or an absolute path)",
    );
  }
  if (nameOrPath.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL");
  let path: string;
  if (isAbsolute(nameOrPath)) {
    path = normalize(nameOrPath);
  } else {
    const segments = nameOrPath.split("/");
    if (nameOrPath.includes("\\") || segments.some((s) => s === "" || s === "." || s === "..")) {
      throw new InvalidArgumentError(
        field,
        `${JSON.stringify(nameOrPath)} is not a plain name under images/ (no '..', '.', empty segments or backslashes); pass an absolute path instead`,
      );
    }
    const root = normalize(imagesDir);
    path = join(root, nameOrPath);
    const rel = relative(root, path);
    if (rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
      throw new InvalidArgumentError(field, `${JSON.stringify(nameOrPath)} escapes images/`);
    }
  }
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === "ENOENT" ||
      (err as NodeJS.ErrnoException).code === "ENOTDIR"
    ) {
      throw new NotFoundError(`${field} image`, path);
    }
    throw new FailedPreconditionError(
      `${field}: cannot stat image ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!st.isFile()) {
    throw new FailedPreconditionError(`${field}: image ${path} is not a regular file`);
  }
  try {
    await access(path, constants.R_OK);
  } catch (err) {
    throw new FailedPreconditionError(`${field}: image ${path} is not readable by the daemon`, {
      cause: err,
      hint: "fix the file's permissions (the daemon needs read access)",
    });
  }
  return { path, identity: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
}

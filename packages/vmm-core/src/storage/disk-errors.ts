import { ResourceExhaustedError } from "../errors.js";

/** Errno codes meaning "no space left" (disk full, or quota exceeded). */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * Turns ENOSPC/EDQUOT into ResourceExhaustedError("disk full while <what>");
 * returns any other error unchanged.
 */
export function mapDiskError(err: unknown, what: string): unknown {
  if (!isDiskFull(err)) return err;
  const code = (err as NodeJS.ErrnoException).code;
  return new ResourceExhaustedError(`disk full while ${what} (${code})`, {
    cause: err,
    hint: "free space in data_dir (delete snapshots or stopped sandboxes) or raise the quota",
  });
}

/**
 * Errno codes by which FICLONE says "this pair of files cannot share extents"
 * (as opposed to a real I/O failure): unsupported filesystem, different
 * filesystems, or an ioctl the filesystem does not implement.
 */
export function isReflinkUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === "ENOTSUP" ||
    code === "EOPNOTSUPP" ||
    code === "EXDEV" ||
    code === "EINVAL" ||
    code === "ENOTTY" ||
    code === "ENOSYS" ||
    code === "EBADF"
  );
}

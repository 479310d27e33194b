const texts: Record<string, [number, string]> = {
  ENOENT: [2, "No such file or directory"],
  EACCES: [13, "Permission denied"],
  EPERM: [1, "Operation not permitted"],
  EEXIST: [17, "File exists"],
  ENOTDIR: [20, "Not a directory"],
  EISDIR: [21, "Is a directory"],
  EINVAL: [22, "Invalid argument"],
  EROFS: [30, "Read-only file system"],
  ENAMETOOLONG: [36, "File name too long"],
  EADDRINUSE: [98, "Address in use"],
  EBUSY: [16, "Device or resource busy"],
  ENOSPC: [28, "No space left on device"],
};

/** Formats a Node fs/net error the way Rust's `io::Error` displays it: `<text> (os error <n>)`. */
export function osError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  const t = texts[code];
  return t ? `${t[1]} (os error ${t[0]})` : String((err as Error)?.message ?? err);
}

import { lstat, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { FirecrackerLaunchError } from "./errors.js";

/** Longest Unix socket path: `sun_path` is 108 bytes including the NUL (NOTES.md §9). */
export const maxUnixSocketPathBytes = 107;

/**
 * Throws a {@link FirecrackerLaunchError} if `path` (absolute, as the client connects to it) is
 * longer than 107 bytes. `what` names the socket in the message.
 */
export function checkUnixSocketPath(path: string, what: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > maxUnixSocketPathBytes) {
    throw new FirecrackerLaunchError(
      `${what} path is ${bytes} bytes, over the ${maxUnixSocketPathBytes}-byte Unix socket limit: ${path}; shorten data_dir / chroot_base_dir / the instance id / the socket name`,
    );
  }
}

/**
 * Makes sure nothing is at `path` before Firecracker binds it (it exits if the path exists).
 * Rule: nothing there → ok; a socket nobody accepts connections on (ECONNREFUSED) → stale, unlinked;
 * a socket a live process accepts on → refused; anything that is not a socket → refused (never
 * delete a file we did not make).
 */
export async function removeStaleSocket(path: string, what: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (!st) return;
  if (!st.isSocket()) {
    throw new FirecrackerLaunchError(
      `${what} path ${path} exists and is not a socket; remove it or choose another path`,
    );
  }
  if (await isListening(path)) {
    throw new FirecrackerLaunchError(
      `${what} ${path} is in use by a live process; stop that Firecracker (or pick another id/directory) first`,
    );
  }
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

/** Whether something accepts connections on the Unix socket at `path` (1 s bound). */
export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    const finish = (value: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => finish(true), 1000);
    sock.once("connect", () => finish(true));
    sock.once("error", () => finish(false));
  });
}

/**
 * Typed paths of one sandbox directory, `<data_dir>/sandboxes/<id>/`
 * (firecracker-containerd `internal/vm/dir.go`).
 *
 * The directory is the Firecracker process's cwd (ARCHITECTURE decision 3):
 * everything handed to Firecracker uses `relative` names, so a snapshot taken
 * here records relative paths and restores cleanly into another sandbox dir.
 * The daemon itself uses `absolute` paths (connecting to sockets, reading logs).
 *
 * Socket paths (sun_path) are limited to 107 bytes (firecracker NOTES §9); the
 * longest one is `<dir>/vsock.sock_<port>` with up to 11 chars of suffix.
 */
import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { removeDeletingLeftovers, removeDirAtomic } from "../internal/atomic-delete.js";
import { readJsonFile, writeFileAtomic } from "../internal/atomic-file.js";
import { ID_MAX_LENGTH, isValidId, validateId } from "../internal/ids.js";

/** File names inside a sandbox dir; also the relative paths given to Firecracker. */
export const SANDBOX_FILES = {
  /** Firecracker API socket (`--api-sock`). */
  apiSocket: "api.sock",
  /** Writable rootfs clone. */
  rootfs: "rootfs.ext4",
  /** vsock UDS (`uds_path`); Firecracker also binds `vsock.sock_<port>` for guest-initiated connections. */
  vsockSocket: "vsock.sock",
  /** Firecracker log (`PUT /logger`). */
  firecrackerLog: "firecracker.log",
  /** Serial console output. */
  consoleLog: "console.log",
  /** Firecracker metrics (`PUT /metrics`). */
  metrics: "metrics.json",
  /** The sandbox record (JSON, written atomically). */
  record: "sandbox.json",
  /** vmstate file of the snapshot this sandbox was restored from (hard link or reflink). */
  vmstate: "vmstate",
  /** Memory file this sandbox was restored from (hard link or reflink; mapped by Firecracker). */
  mem: "mem",
  /** vmstate written by Pause (read back by Resume). */
  pausedVmstate: "paused.vmstate",
  /** Memory file written by Pause (mapped by Firecracker after Resume). */
  pausedMem: "paused.mem",
} as const;

/** Key of a file in a sandbox dir. */
export type SandboxFile = keyof typeof SANDBOX_FILES;

/** One path per {@link SandboxFile}. */
export type SandboxPaths = { readonly [K in SandboxFile]: string };

/** Longest allowed Unix socket path, in bytes (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Longest suffix Firecracker appends to the vsock UDS path: `_` + a u32 port. */
const VSOCK_PORT_SUFFIX_BYTES = "_4294967295".length;

/** Absolute path of `<dataDir>/sandboxes`. */
export function sandboxesDir(dataDir: string): string {
  return join(dataDir, "sandboxes");
}

/**
 * Returns the length in bytes of the longest socket path a sandbox with an id
 * of `idLength` chars would use under `dataDir`.
 */
export function longestSocketPathBytes(dataDir: string, idLength: number): number {
  const dir = join(sandboxesDir(dataDir), "x".repeat(idLength));
  return Math.max(
    Buffer.byteLength(join(dir, SANDBOX_FILES.vsockSocket)) + VSOCK_PORT_SUFFIX_BYTES,
    Buffer.byteLength(join(dir, SANDBOX_FILES.apiSocket)),
  );
}

/** Longest sandbox id (chars) whose socket paths fit under `dataDir`; may be ≤ 0. */
export function maxSandboxIdLength(dataDir: string): number {
  return Math.min(ID_MAX_LENGTH, MAX_SOCKET_PATH_BYTES - longestSocketPathBytes(dataDir, 1) + 1);
}

/**
 * Throws InvalidArgumentError("data_dir") unless sockets of a sandbox with an
 * id of `idLength` chars fit in 107 bytes. Call at startup with the id length
 * the daemon must support (at least that of generated ids); `SandboxDir.create`
 * checks each actual id.
 */
export function assertSocketPathsFit(dataDir: string, idLength: number): void {
  const longest = longestSocketPathBytes(dataDir, idLength);
  if (longest > MAX_SOCKET_PATH_BYTES) {
    const dataDirBytes = Buffer.byteLength(dataDir);
    throw new InvalidArgumentError(
      "data_dir",
      `socket paths of a sandbox with a ${idLength}-char id would be ${longest} bytes, over the ${MAX_SOCKET_PATH_BYTES}-byte Unix socket limit`,
      {
        hint: `shorten data_dir (now ${dataDirBytes} bytes: ${dataDir}) by at least ${longest - MAX_SOCKET_PATH_BYTES} bytes, or use shorter sandbox ids (at most ${maxSandboxIdLength(dataDir)} chars fit)`,
      },
    );
  }
}

/**
 * A sandbox directory. Immutable; obtain one with {@link SandboxDir.create}
 * (new) or {@link SandboxDir.open} (existing).
 */
export class SandboxDir {
  /** The sandbox id (a valid `sandbox_id`). */
  readonly id: string;
  /** Absolute path of the directory. */
  readonly path: string;
  /** Absolute paths, for the daemon. */
  readonly absolute: SandboxPaths;
  /** Paths relative to the directory (= Firecracker's cwd), for Firecracker. */
  readonly relative: SandboxPaths = SANDBOX_FILES;

  private constructor(dataDir: string, id: string) {
    this.id = id;
    this.path = join(sandboxesDir(dataDir), id);
    const abs = {} as Record<SandboxFile, string>;
    for (const key of Object.keys(SANDBOX_FILES) as SandboxFile[]) {
      abs[key] = join(this.path, SANDBOX_FILES[key]);
    }
    this.absolute = Object.freeze(abs);
  }

  /**
   * Creates `<dataDir>/sandboxes/<id>/` (mode 0700; parents as needed, also 0700).
   * Errors: InvalidArgumentError for a bad id or socket paths over 107 bytes,
   * AlreadyExistsError if the directory exists.
   */
  static async create(dataDir: string, id: string): Promise<SandboxDir> {
    validateId("sandbox_id", id, "id");
    assertSocketPathsFit(dataDir, id.length);
    const dir = new SandboxDir(dataDir, id);
    await mkdir(sandboxesDir(dataDir), { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir.path, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new AlreadyExistsError(
          `the directory of sandbox ${id} already exists (left by an earlier sandbox)`,
        );
      }
      throw err;
    }
    return dir;
  }

  /** Opens an existing sandbox directory; NotFoundError("sandbox", id) if absent. */
  static async open(dataDir: string, id: string): Promise<SandboxDir> {
    validateId("sandbox_id", id, "id");
    const dir = new SandboxDir(dataDir, id);
    try {
      if ((await stat(dir.path)).isDirectory()) return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    throw new NotFoundError("sandbox", id);
  }

  /**
   * Lists the ids of existing sandbox dirs under `dataDir` (for re-adoption at
   * startup), after removing leftovers of interrupted deletions; dot-names and
   * other non-id entries are skipped.
   */
  static async list(dataDir: string): Promise<{ ids: string[]; removedLeftovers: string[] }> {
    const parent = sandboxesDir(dataDir);
    const removedLeftovers = await removeDeletingLeftovers(parent);
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(parent, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ids: [], removedLeftovers };
      throw err;
    }
    const ids = entries
      .filter((e) => e.isDirectory() && isValidId("sandbox_id", e.name))
      .map((e) => e.name)
      .sort();
    return { ids, removedLeftovers };
  }

  /** Absolute path of the vsock socket Firecracker binds for guest-initiated connections to `port`. */
  vsockListenerPath(port: number): string {
    return `${this.absolute.vsockSocket}_${port}`;
  }

  /**
   * Writes the sandbox record atomically (temp + rename), without fsync: the
   * record describes a VM that only lives as long as the OS does, so a power
   * loss that drops the latest write also killed that VM, and the next start
   * cleans up from the older record. An fsync here would also force ext4 to
   * write back the rootfs clone just copied, slowing every Create.
   */
  writeRecord(record: unknown): Promise<void> {
    return writeFileAtomic(this.absolute.record, `${JSON.stringify(record, null, 2)}\n`, {
      durable: false,
    });
  }

  /** Reads the sandbox record (errors of readJsonFile pass through). */
  readRecord(): Promise<unknown> {
    return readJsonFile(this.absolute.record);
  }

  /**
   * Removes the directory atomically (rename to a dot-name, then rm -rf).
   * Idempotent: returns false if it was already gone.
   */
  remove(): Promise<boolean> {
    return removeDirAtomic(this.path);
  }
}

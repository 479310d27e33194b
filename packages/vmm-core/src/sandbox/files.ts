import {
  AgentFiles,
  type FileEvent,
  type FileInfo,
  type WriteFileOptions,
} from "../agent/agent-files.js";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import type { SandboxContext } from "./context.js";
import type { Sandbox } from "./sandbox.js";
import type { Workloads } from "./workloads.js";

/** Longest guest path the file calls accept, bytes of UTF-8 (Linux PATH_MAX). */
export const MAX_GUEST_PATH_BYTES = 4096;

/** Deepest ListDir (levels below the directory). */
export const MAX_LIST_DEPTH = 64;

/** Most entries one ListDir returns (the reply is one message held in memory). */
export const MAX_LIST_ENTRIES = 100_000;

/** What WriteFile needs besides the bytes. */
export interface WriteFileSpec extends WriteFileOptions {
  readonly path: string;
}

/**
 * File calls into a sandbox's guest (SandboxFilesService, docs/files.md),
 * through its agent. Each call resolves the sandbox, resumes it if paused
 * (as Run and Exec do, `lifecycle.auto_resume`), and counts as activity while
 * it runs: auto-pause waits for it, and its idle countdown starts again when
 * it ends. File calls never change the sandbox's state (`ready` stays
 * `ready`), so they run alongside Run and Exec.
 */
export class SandboxFiles {
  constructor(
    private readonly ctx: SandboxContext,
    private readonly workloads: Workloads,
    /** Restarts the sandbox's idle (auto-pause) countdown. */
    private readonly touched: (s: Sandbox) => void,
  ) {}

  /** Describes a path (a final symlink is not followed). NotFound (kind not_found) if it is missing. */
  stat(id: string, path: string, signal: AbortSignal): Promise<FileInfo> {
    checkPath(path);
    return this.call(id, (f) => f.stat(path, signal));
  }

  /** Creates a directory; with `parents` also its missing parents (an existing directory is fine). */
  makeDir(
    id: string,
    path: string,
    options: { mode?: number; parents?: boolean },
    signal: AbortSignal,
  ): Promise<FileInfo> {
    checkPath(path);
    return this.call(id, (f) => f.mkdir(path, options, signal));
  }

  /** Removes a path; a non-empty directory needs `recursive`. */
  removePath(
    id: string,
    path: string,
    options: { recursive?: boolean },
    signal: AbortSignal,
  ): Promise<void> {
    checkPath(path);
    return this.call(id, (f) => f.remove(path, options, signal));
  }

  /** Lists a directory `depth` levels deep (0 or 1 = its entries), at most MAX_LIST_ENTRIES entries. */
  listDir(id: string, path: string, depth: number, signal: AbortSignal): Promise<FileInfo[]> {
    checkPath(path);
    if (!Number.isInteger(depth) || depth < 0 || depth > MAX_LIST_DEPTH) {
      throw new InvalidArgumentError("depth", `must be 0..${MAX_LIST_DEPTH}, got ${depth}`);
    }
    return this.call(id, (f) =>
      f.listDir(path, { depth: depth || 1, maxEntries: MAX_LIST_ENTRIES }, signal),
    );
  }

  /** Writes a file atomically from `data` (see AgentFiles.writeFile). */
  writeFile(
    id: string,
    spec: WriteFileSpec,
    data: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<FileInfo> {
    checkPath(spec.path);
    return this.call(id, (f) => f.writeFile(spec.path, spec, data, signal));
  }

  /**
   * Reads a file: resolves once it is open (errors such as NotFound come
   * here), with its bytes as they are consumed. The call counts as activity
   * until the iteration ends. `reuseChunks`: see ReadFileOptions.
   */
  async readFile(
    id: string,
    range: { path: string; offset: number; length: number; reuseChunks?: boolean },
    signal: AbortSignal,
  ): Promise<AsyncIterable<Uint8Array>> {
    checkPath(range.path);
    checkOffset("offset", range.offset);
    checkOffset("length", range.length);
    const { files, done } = await this.begin(id);
    try {
      const { chunks } = await files.readFile(range.path, range, signal);
      return guarded(chunks, done);
    } catch (err) {
      done();
      throw err;
    }
  }

  /**
   * Watches a path: resolves once the watch is in place, with its events.
   * They end when the client stops iterating, the path is removed or moved,
   * or the sandbox stops (then the iteration just ends).
   */
  async watch(
    id: string,
    path: string,
    recursive: boolean,
    signal: AbortSignal,
  ): Promise<AsyncIterable<FileEvent>> {
    checkPath(path);
    const { s, files, done } = await this.begin(id);
    try {
      const events = await files.watch(path, { recursive }, signal);
      return guarded(untilStopped(s, events), done);
    } catch (err) {
      done();
      throw err;
    }
  }

  /** Runs a one-shot call as activity of the sandbox. */
  private async call<T>(id: string, fn: (files: AgentFiles) => Promise<T>): Promise<T> {
    const { files, done } = await this.begin(id);
    try {
      return await fn(files);
    } finally {
      done();
    }
  }

  /** Resolves the sandbox, wakes it, and counts a call until `done`. */
  private async begin(id: string): Promise<{ s: Sandbox; files: AgentFiles; done: () => void }> {
    const s = this.ctx.registry.get(id);
    await this.workloads.awake(s);
    const agent = this.workloads.agentOf(s);
    const p = s.phase;
    if (p.kind !== "ready" && p.kind !== "running" && p.kind !== "checkpointing") {
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; it must be ready`);
    }
    s.countFileCall(1);
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      s.countFileCall(-1);
      this.touched(s);
    };
    return { s, files: new AgentFiles(agent), done };
  }
}

/** Checks a guest path: absolute, no NUL, at most MAX_GUEST_PATH_BYTES. */
export function checkPath(path: string): void {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new InvalidArgumentError("path", `must be an absolute guest path, got ${quote(path)}`);
  }
  if (path.includes("\0")) throw new InvalidArgumentError("path", "must not contain NUL");
  const bytes = Buffer.byteLength(path, "utf8");
  if (bytes > MAX_GUEST_PATH_BYTES) {
    throw new InvalidArgumentError(
      "path",
      `is ${bytes} bytes; at most ${MAX_GUEST_PATH_BYTES} are allowed`,
    );
  }
}

function checkOffset(field: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new InvalidArgumentError(field, `must be a byte count below 2^53, got ${v}`);
  }
}

function quote(path: unknown): string {
  const s = JSON.stringify(path) ?? String(path);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

/** `inner`, calling `done` once when the iteration ends in any way. */
async function* guarded<T>(inner: AsyncIterable<T>, done: () => void): AsyncGenerator<T> {
  try {
    yield* inner;
  } finally {
    done();
  }
}

/** Watch events; a connection lost because the sandbox stopped ends them instead of failing. */
async function* untilStopped(
  s: Sandbox,
  events: AsyncIterable<FileEvent>,
): AsyncGenerator<FileEvent> {
  try {
    yield* events;
  } catch (err) {
    if (!stillServing(s)) return;
    throw err;
  }
}

function stillServing(s: Sandbox): boolean {
  const k = s.phase.kind;
  return !s.lifetime.signal.aborted && (k === "ready" || k === "running" || k === "checkpointing");
}

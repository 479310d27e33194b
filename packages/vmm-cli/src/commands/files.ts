import { createReadStream, createWriteStream, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import { type FileEvent, FileEventSchema, type FileInfo, FileInfoSchema } from "@vmm/proto";
import type { CommandContext, CommandResult } from "../command.js";
import { defineCommand, writeChunk } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { UsageError } from "../errors.js";
import { formatTable, formatUnixNanos, parseOutputFormat, renderStreamMessage } from "../output.js";
import { resolveSandboxId } from "../resolve.js";

/** Bytes per WriteFile message `vmm cp` sends. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;

/** A `<id>:<path>` argument: the sandbox (id or unique prefix) and the guest path. */
interface RemotePath {
  readonly id: string;
  readonly path: string;
}

/**
 * Parses `ID:/PATH`. A word starting with `/` or `.` is always a local path
 * (write `./a:b` for a local file with a colon); the guest path must be absolute.
 */
export function parseRemote(arg: string): RemotePath | undefined {
  if (arg.startsWith("/") || arg.startsWith(".") || arg === "-") return undefined;
  const i = arg.indexOf(":");
  if (i <= 0) return undefined;
  const path = arg.slice(i + 1);
  if (!path.startsWith("/")) {
    throw new UsageError(`the guest path in "${arg}" must be absolute (ID:/path)`);
  }
  return { id: arg.slice(0, i), path };
}

function requireRemote(arg: string): RemotePath {
  const r = parseRemote(arg);
  if (!r) throw new UsageError(`expected ID:/PATH, got "${arg}"`);
  return r;
}

async function resolved(ctx: CommandContext, r: RemotePath): Promise<RemotePath> {
  return { id: await resolveSandboxId(ctx.clients(), r.id, ctx.signal), path: r.path };
}

function parseMode(v: string | undefined): number {
  if (v === undefined) return 0;
  if (!/^0?[0-7]{1,4}$/.test(v))
    throw new UsageError(`--mode wants octal permission bits, got "${v}"`);
  return Number.parseInt(v, 8);
}

/** `vmm cp SRC DST`: one side local (or `-`), the other `ID:/PATH`. */
export const cpCommand = defineCommand({
  names: ["cp"],
  summary: "Copy a file into or out of a sandbox",
  usage: "cp [--mode MODE] [-p] [-u USER] SRC DST",
  description:
    "One of SRC and DST is ID:/PATH (ID may be a unique prefix), the other a local path or -\n" +
    "(stdin / stdout). Into the sandbox the file is written atomically (a temp file renamed when\n" +
    "complete); out of it a local file is written the same way. Examples:\n" +
    "  vmm cp ./data.csv sb-1:/root/data.csv\n" +
    "  vmm cp sb-1:/var/log/app.log -\n" +
    "  tar c dir | vmm cp - sb-1:/tmp/dir.tar",
  flags: {
    mode: {
      type: "string",
      value: "MODE",
      description: "permission bits of the new file (octal, default 0644)",
    },
    parents: { type: "boolean", short: "p", description: "create missing parent directories" },
    user: {
      type: "string",
      short: "u",
      value: "USER",
      description: "owner of the new file (name or uid)",
    },
  },
  args: { positionals: ["SRC", "DST"], rest: "none" },
  async handler(ctx, { values, positionals }) {
    const [src, dst] = [positionals[0]!, positionals[1]!];
    const from = parseRemote(src);
    const to = parseRemote(dst);
    if ((from === undefined) === (to === undefined)) {
      throw new UsageError("exactly one of SRC and DST must be ID:/PATH");
    }
    if (to) {
      const r = await resolved(ctx, to);
      const data =
        src === "-" ? ctx.io.stdin : createReadStream(src, { highWaterMark: UPLOAD_CHUNK_BYTES });
      // A regular file's size goes in the header: an upload cut short (Ctrl-C, a file that
      // shrank) is then never committed as a shorter file.
      const stat = src === "-" ? undefined : statSync(src, { throwIfNoEntry: false });
      const info = await ctx.clients().files.writeFile(
        (async function* () {
          yield {
            payload: {
              case: "header" as const,
              value: {
                id: r.id,
                path: r.path,
                mode: parseMode(values.mode),
                makeParents: values.parents ?? false,
                user: values.user ?? "",
                ...(stat?.isFile() && { size: BigInt(stat.size) }),
              },
            },
          };
          for await (const chunk of data) {
            const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
            yield { payload: { case: "data" as const, value: bytes } };
          }
        })(),
        { signal: ctx.signal },
      );
      return { exitCode: 0, stderr: `${info.size} bytes → ${r.id}:${info.path}\n` };
    }
    if (values.mode !== undefined || values.parents || values.user !== undefined) {
      throw new UsageError("--mode, -p and -u apply to copies into a sandbox");
    }
    const r = await resolved(ctx, from!);
    const stream = ctx.clients().files.readFile({ id: r.id, path: r.path }, { signal: ctx.signal });
    if (dst === "-") {
      for await (const c of stream) await writeChunk(ctx.io.stdout, c.data);
      return { exitCode: 0 };
    }
    await downloadTo(dst, stream);
    return { exitCode: 0 };
  },
});

/** Writes the chunks to `dst` through a temp file beside it, renamed when complete. */
async function downloadTo(dst: string, chunks: AsyncIterable<{ data: Uint8Array }>): Promise<void> {
  const tmp = join(dirname(dst), `.${basename(dst)}.vmm-cp-${process.pid}`);
  const out = createWriteStream(tmp, { flags: "wx" });
  try {
    for await (const c of chunks) {
      if (!out.write(c.data)) await new Promise<void>((resolve) => out.once("drain", resolve));
    }
    out.end();
    await finished(out);
    await rename(tmp, dst);
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}

const TYPE_CHAR: Record<string, string> = { file: "-", dir: "d", symlink: "l", other: "?" };

/** `drwxr-xr-x` for a FileInfo. */
export function modeString(info: FileInfo): string {
  const bits = "rwxrwxrwx";
  let s = TYPE_CHAR[info.type] ?? "?";
  for (let i = 0; i < 9; i++) s += info.mode & (1 << (8 - i)) ? bits[i] : "-";
  return s;
}

/** Flags `vmm ls ID:/PATH` adds to `vmm list` (whose alias `ls` it shares). */
export const listFilesFlags = {
  recursive: { type: "boolean", short: "R", description: "with ID:/PATH: list the whole tree" },
  depth: { type: "string", value: "N", description: "with ID:/PATH: levels to list (default 1)" },
} as const;

/**
 * `vmm ls ID:/PATH`: a directory's entries, MODE SIZE MODIFIED NAME per
 * entry sorted by path (with -R or --depth > 1 the full path), symlinks with
 * their target; -o json|yaml one FileInfo per line/document.
 */
export async function listFiles(
  ctx: CommandContext,
  values: {
    recursive?: boolean | undefined;
    depth?: string | undefined;
    output?: string | undefined;
  },
  target: string,
): Promise<CommandResult> {
  const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
  let depth = values.recursive ? 64 : 1;
  if (values.depth !== undefined) {
    if (!/^\d+$/.test(values.depth))
      throw new UsageError(`--depth wants a number, got "${values.depth}"`);
    depth = Number(values.depth);
  }
  const r = await resolved(ctx, requireRemote(target));
  const res = await ctx
    .clients()
    .files.listDir({ id: r.id, path: r.path, depth }, { signal: ctx.signal });
  const entries = [...res.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (format !== "table") {
    return {
      exitCode: 0,
      stdout: entries.map((e) => renderStreamMessage(format, FileInfoSchema, e)).join(""),
    };
  }
  const rows = entries.map((e) => [
    modeString(e),
    String(e.size),
    formatUnixNanos(e.mtime),
    (depth > 1 ? e.path : e.name) + (e.type === "symlink" ? ` -> ${e.symlinkTarget}` : ""),
  ]);
  return {
    exitCode: 0,
    stdout: rows.length ? formatTable(["MODE", "SIZE", "MODIFIED", "NAME"], rows) : "",
  };
}

/** `vmm watch ID:/PATH`: changes until Ctrl-C. */
export const watchCommand = defineCommand({
  names: ["watch"],
  summary: "Stream changes under a path in a sandbox until Ctrl-C",
  usage: "watch [-r] [-o json|yaml] ID:/PATH",
  description:
    "One line per change: TIME KIND PATH (kind: create, write, remove, rename, chmod). -r also\n" +
    "watches every directory below PATH, including new ones. Ends when the path is removed or\n" +
    "the sandbox stops; Ctrl-C ends it with exit code 0.",
  flags: {
    recursive: { type: "boolean", short: "r", description: "watch subdirectories too" },
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: ["ID:/PATH"], rest: "none" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const r = await resolved(ctx, requireRemote(positionals[0]!));
    const stream = ctx
      .clients()
      .files.watch(
        { id: r.id, path: r.path, recursive: values.recursive ?? false },
        { signal: ctx.signal },
      );
    try {
      for await (const ev of stream) {
        await writeChunk(
          ctx.io.stdout,
          format === "table" ? formatEvent(ev) : renderStreamMessage(format, FileEventSchema, ev),
        );
      }
    } catch (err) {
      if (ctx.signal.aborted) return { exitCode: 0 };
      throw err;
    }
    return { exitCode: 0 };
  },
});

function formatEvent(ev: FileEvent): string {
  return `${formatUnixNanos(ev.timestamp)}  ${ev.kind.padEnd(6)}  ${ev.path}\n`;
}

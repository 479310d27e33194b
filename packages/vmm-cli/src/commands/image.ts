import { ListImagesResponseSchema, type PullProgress, PullProgressSchema } from "@vmm/proto";
import { defineCommand, type OutputStream, writeChunk } from "../command.js";
import { outputFlag } from "../common-flags.js";
import {
  formatAge,
  formatBytes,
  formatTable,
  parseOutputFormat,
  renderMessage,
} from "../output.js";

/** `vmm image pull REF`: pull an image into the daemon's store, with progress. */
export const imagePullCommand = defineCommand({
  names: ["image pull"],
  summary: "Pull an OCI image into the daemon's image store",
  usage: "image pull [-q] [-o json|yaml] REF",
  description:
    "REF is [registry/]name[:tag] or name@sha256:<hex> (busybox = docker.io/library/busybox:latest).\n" +
    "Progress goes to stderr: a bar on a terminal, one line per step otherwise. Prints the\n" +
    "manifest digest when done (-o json|yaml: the last progress message). A pull of an image\n" +
    "already being pulled joins it; an interrupted pull resumes where it stopped.",
  flags: {
    quiet: { type: "boolean", short: "q", description: "no progress, only the digest" },
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: ["REF"], rest: "none" },
  async handler(ctx, { values, positionals }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const reference = positionals[0]!;
    const progress = values.quiet
      ? undefined
      : createPullProgress(ctx.io.stderr, reference, () => ctx.io.now());
    let last: PullProgress | undefined;
    try {
      for await (const p of ctx.clients().image.pullImage({ reference }, { signal: ctx.signal })) {
        last = p;
        await progress?.update(p);
      }
    } finally {
      progress?.stop();
    }
    if (!last?.done) throw new Error("the daemon ended the pull without a done message");
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, PullProgressSchema, last) };
    }
    return { exitCode: 0, stdout: `${last.digest}\n` };
  },
});

/** `vmm image ls`: the pulled images. */
export const imageListCommand = defineCommand({
  names: ["image list", "image ls"],
  summary: "List pulled images",
  usage: "image list [-q] [-o wide|json|yaml]",
  description:
    "Columns: REFERENCE DIGEST SIZE PULLED (DIGEST shortened; wide shows it whole).\n" +
    "SIZE is config plus layers as stored (compressed).",
  flags: {
    quiet: { type: "boolean", short: "q", description: "print references only" },
    output: outputFlag(["table", "wide", "json", "yaml"]),
  },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "wide", "json", "yaml"]);
    const res = await ctx.clients().image.listImages({}, { signal: ctx.signal });
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, ListImagesResponseSchema, res) };
    }
    if (values.quiet)
      return { exitCode: 0, stdout: res.images.map((i) => `${i.reference}\n`).join("") };
    const now = ctx.io.now();
    const rows = res.images.map((i) => [
      i.reference,
      format === "wide" ? i.digest : i.digest.slice(0, 19),
      formatBytes(i.sizeBytes),
      formatAge(Number(i.createdAt) * 1000, now),
    ]);
    return { exitCode: 0, stdout: formatTable(["REFERENCE", "DIGEST", "SIZE", "PULLED"], rows) };
  },
});

/** `vmm image rm REF`: remove a pulled image. */
export const imageRemoveCommand = defineCommand({
  names: ["image remove", "image rm"],
  summary: "Remove a pulled image and the blobs no other image uses",
  usage: "image remove REF",
  description:
    "Prints the reference once removed. Fails (FAILED_PRECONDITION) while a sandbox or snapshot\n" +
    "uses the image.",
  flags: {},
  args: { positionals: ["REF"], rest: "none", complete: "image" },
  async handler(ctx, { positionals }) {
    const reference = positionals[0]!;
    await ctx.clients().image.removeImage({ reference }, { signal: ctx.signal });
    return { exitCode: 0, stdout: `${reference}\n` };
  },
});

/** Shows pull progress on `out`: see createPullProgress. */
export interface PullProgressView {
  update(p: PullProgress): Promise<void>;
  /** Ends the bar's line (terminal). Safe to call twice. */
  stop(): void;
}

const BAR_WIDTH = 30;

/**
 * On a terminal: one redrawn line `REF [####------] 12.0MiB/50.0MiB 4.2MiB/s`
 * (at most 10 redraws a second). Otherwise one plain line per phase and per
 * blob started, so logs stay short: `downloading sha256:abc… 0B/50.0MiB`.
 */
export function createPullProgress(
  out: OutputStream,
  reference: string,
  now: () => number,
): PullProgressView {
  const start = now();
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastKey = "";
  let drawn = false;
  return {
    async update(p) {
      if (out.isTTY) {
        const t = now();
        if (!p.done && t - lastDraw < 100) return;
        lastDraw = t;
        const total = Number(p.totalBytes);
        const cur = Number(p.currentBytes);
        const filled = total > 0 ? Math.round((cur / total) * BAR_WIDTH) : 0;
        const rate = cur / Math.max(0.001, (t - start) / 1000);
        const line =
          total > 0
            ? `${reference} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${formatBytes(p.currentBytes)}/${formatBytes(p.totalBytes)} ${formatBytes(BigInt(Math.round(rate)))}/s`
            : `${reference} ${p.status}…`;
        await writeChunk(out, `\r\x1b[K${line}`);
        drawn = true;
        return;
      }
      const key = `${p.status} ${p.digest}`;
      if (key === lastKey) return;
      lastKey = key;
      const bytes =
        p.totalBytes > 0n ? ` ${formatBytes(p.currentBytes)}/${formatBytes(p.totalBytes)}` : "";
      await writeChunk(out, `${p.status} ${p.digest === "" ? reference : p.digest}${bytes}\n`);
    },
    stop() {
      if (!drawn) return;
      drawn = false;
      out.write("\n");
    },
  };
}

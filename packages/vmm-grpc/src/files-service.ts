import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createContextKey } from "@connectrpc/connect";
import { type FileInfo, InvalidArgumentError } from "@vmm/core";
import * as pb from "@vmm/proto";
import type { FilesApi } from "./files-api.js";

/**
 * Per call: true once the client reset its request stream (HTTP/2
 * RST_STREAM). Set by the daemon's adapter, which sees the Node request; the
 * default (never reset) fits transports without resets.
 */
export const requestResetKey = createContextKey<() => boolean>(() => false, {
  description: "request stream reset",
});

/**
 * Registers sandbox.v1.SandboxFilesService (docs/files.md). Bytes stream
 * through without collecting: WriteFile pulls the next request message while
 * less than FILE_IN_FLIGHT_BYTES (1 MiB) wait for the guest's socket, ReadFile
 * reads at most that far ahead of the messages written, so a slow client or
 * guest holds the daemon at a few chunks per call. Without a FilesApi every
 * method answers UNIMPLEMENTED.
 */
export function registerFilesService(router: ConnectRouter, files: FilesApi | undefined): void {
  const api = (): FilesApi => {
    if (files) return files;
    throw new ConnectError(
      "file calls (SandboxFilesService) are not built yet in this daemon",
      Code.Unimplemented,
    );
  };
  router.service(
    pb.SandboxFilesService,
    {
      async writeFile(requests, ctx) {
        const iterator = requests[Symbol.asyncIterator]();
        const first = await iterator.next();
        if (first.done || first.value.payload.case !== "header") {
          throw new InvalidArgumentError("payload", "the first WriteFileRequest must carry header");
        }
        const h = first.value.payload.value;
        requireId(h.id);
        const info = await api().writeFile(
          h.id,
          {
            path: h.path,
            mode: h.mode,
            makeParents: h.makeParents,
            ...(h.user !== "" && { user: h.user }),
          },
          dataOf(
            iterator,
            ctx.signal,
            ctx.values.get(requestResetKey),
            h.size === undefined ? undefined : safeNumber("size", h.size),
          ),
          ctx.signal,
        );
        return fileInfoToProto(info);
      },

      async *readFile(req, ctx) {
        requireId(req.id);
        const chunks = await api().readFile(
          req.id,
          {
            path: req.path,
            offset: safeNumber("offset", req.offset),
            length: safeNumber("length", req.length),
            // connect serializes (copies) each yielded message before it asks for the next.
            reuseChunks: true,
          },
          ctx.signal,
        );
        for await (const data of chunks) yield { data };
      },

      async listDir(req, ctx) {
        requireId(req.id);
        const entries = await api().listDir(req.id, req.path, req.depth, ctx.signal);
        return { entries: entries.map(fileInfoToProto) };
      },

      async stat(req, ctx) {
        requireId(req.id);
        return fileInfoToProto(await api().stat(req.id, req.path, ctx.signal));
      },

      async removePath(req, ctx) {
        requireId(req.id);
        await api().removePath(req.id, req.path, { recursive: req.recursive }, ctx.signal);
        return {};
      },

      async makeDir(req, ctx) {
        requireId(req.id);
        const info = await api().makeDir(
          req.id,
          req.path,
          { mode: req.mode, parents: req.parents },
          ctx.signal,
        );
        return fileInfoToProto(info);
      },

      async *watch(req, ctx) {
        requireId(req.id);
        const events = await api().watch(req.id, req.path, req.recursive, ctx.signal);
        for await (const e of events) yield { path: e.path, kind: e.kind, timestamp: e.timeNs };
      },
    },
    // Responses uncompressed even for a client that accepts gzip: file bytes are often
    // compressed already, and gzip at ~50 MB/s per core was the daemon's largest cost in a
    // ReadFile profile. Compressed requests are still accepted.
    { compressMinBytes: Number.MAX_SAFE_INTEGER },
  );
}

/**
 * The `data` of the messages after the header; another header is an error.
 * A client that cancels (HTTP/2 RST_STREAM) also ends Node's request body
 * cleanly when the reset falls between two messages (Node pushes the end of
 * the body on a reset, and aborts the call's signal only once that end was
 * consumed), so the end counts only if the request stream was not reset: a
 * cancelled upload must never be committed as a shorter file. With the
 * header's `size` that holds whatever the timing: an end short of it is
 * refused.
 */
async function* dataOf(
  iterator: AsyncIterator<pb.WriteFileRequest>,
  signal: AbortSignal,
  wasReset: () => boolean,
  size: number | undefined,
): AsyncGenerator<Uint8Array> {
  let received = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) {
      if (size !== undefined && received < size) {
        if (wasReset() || signal.aborted)
          throw new ConnectError("the upload was cancelled", Code.Canceled);
        throw new InvalidArgumentError(
          "size",
          `the upload ended after ${received} of the ${size} bytes its header announced; nothing was written`,
        );
      }
      // connect-es clients end the request stream and then reset it when their signal aborts
      // between two messages: one turn of the event loop lets a reset that follows the end
      // arrive before the upload is committed.
      await new Promise((resolve) => setImmediate(resolve));
      signal.throwIfAborted();
      if (wasReset()) throw new ConnectError("the upload was cancelled", Code.Canceled);
      return;
    }
    const p = next.value.payload;
    if (p.case === "data") {
      received += p.value.length;
      if (size !== undefined && received > size) {
        throw new InvalidArgumentError(
          "size",
          `the upload sent more than the ${size} bytes its header announced; nothing was written`,
        );
      }
      yield p.value;
    } else
      throw new InvalidArgumentError("payload", "only the first WriteFileRequest carries header");
  }
}

/** FileInfo as sent on the wire. */
export function fileInfoToProto(info: FileInfo): MessageInitShape<typeof pb.FileInfoSchema> {
  return {
    path: info.path,
    name: info.name,
    type: info.type,
    size: BigInt(info.size),
    mode: info.mode,
    mtime: info.mtimeNs,
    symlinkTarget: info.symlinkTarget ?? "",
  };
}

function requireId(id: string): void {
  if (id === "") throw new InvalidArgumentError("id", "must not be empty");
}

function safeNumber(field: string, v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(field, `must be below 2^53, got ${v}`);
  }
  return Number(v);
}

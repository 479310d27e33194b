import { create } from "@bufbuild/protobuf";
import { InvalidArgumentError, type ProcessTarget, type ProcessView } from "@vmm/core";
import * as pb from "@vmm/proto";
import type { SandboxApi } from "./sandbox-api.js";

/** ListProcesses: the sandbox's running processes, oldest first. */
export function listProcesses(
  sandboxes: SandboxApi,
  req: pb.ListProcessesRequest,
): pb.ListProcessesResponse {
  if (req.id === "") throw new InvalidArgumentError("id", "must not be empty");
  return create(pb.ListProcessesResponseSchema, {
    processes: sandboxes.listProcesses(req.id).map(processInfoToProto),
  });
}

/** SignalProcess: exactly one of pid and tag names the process. */
export async function signalProcess(
  sandboxes: SandboxApi,
  req: pb.SignalProcessRequest,
): Promise<pb.Empty> {
  if (req.id === "") throw new InvalidArgumentError("id", "must not be empty");
  await sandboxes.signalProcess(req.id, processTargetFromProto(req), req.signal);
  return create(pb.EmptySchema);
}

/** Proto → domain: pid or tag, never both, never neither. */
export function processTargetFromProto(req: { pid: number; tag: string }): ProcessTarget {
  if (req.pid !== 0 && req.tag !== "") {
    throw new InvalidArgumentError("pid", "give either pid or tag, not both");
  }
  if (req.pid !== 0) return { pid: req.pid };
  if (req.tag !== "") return { tag: req.tag };
  throw new InvalidArgumentError("pid", "give the process's pid or its tag");
}

/**
 * Bytes of argv one ListProcesses entry shows. A cmd may be 128 KiB (a script
 * passed to `sh -c`); listing that for every process would let a busy sandbox's
 * answer outgrow a client's receive limit (grpc-js: 4 MiB), as ps(1) also cuts.
 */
export const LISTED_CMD_MAX_BYTES = 4096;

/** The argv as requested, cut to LISTED_CMD_MAX_BYTES; a final "…" element says it was cut. */
export function listedCmd(cmd: readonly string[]): string[] {
  const out: string[] = [];
  let left = LISTED_CMD_MAX_BYTES;
  for (const arg of cmd) {
    const n = Buffer.byteLength(arg);
    if (n <= left) {
      out.push(arg);
      left -= n;
      continue;
    }
    if (left > 0)
      out.push(
        Buffer.from(arg)
          .subarray(0, left)
          .toString("utf8")
          .replace(/\uFFFD$/, ""),
      );
    out.push("…");
    break;
  }
  return out;
}

/** Domain → proto for one listed process. */
export function processInfoToProto(p: ProcessView): pb.ProcessInfo {
  return create(pb.ProcessInfoSchema, {
    pid: p.pid,
    cmd: listedCmd(p.cmd),
    tag: p.tag ?? "",
    startedAt: BigInt(Math.floor(p.startedAt.getTime() / 1000)),
    tty: p.tty,
  });
}

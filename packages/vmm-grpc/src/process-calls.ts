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

/** Domain → proto for one listed process. */
export function processInfoToProto(p: ProcessView): pb.ProcessInfo {
  return create(pb.ProcessInfoSchema, {
    pid: p.pid,
    cmd: [...p.cmd],
    tag: p.tag ?? "",
    startedAt: BigInt(Math.floor(p.startedAt.getTime() / 1000)),
    tty: p.tty,
  });
}

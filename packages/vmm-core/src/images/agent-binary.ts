/**
 * Where the rootfs builder gets the guest agent it injects: a given file, or
 * the agent inside an existing rootfs image (the daemon's default rootfs,
 * built by guest/rootfs/build-rootfs.sh), copied out with debugfs — so the
 * agent in image sandboxes is the one plain sandboxes run.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { promisify } from "node:util";
import { FailedPreconditionError } from "../errors.js";
import { findInitProgram } from "../storage/rootfs-init.js";

const run = promisify(execFile);

/** The agent to inject: a host file, or the init program of an ext4 rootfs image. */
export type AgentBinarySource = { readonly path: string } | { readonly fromRootfs: string };

/**
 * A host path of the agent binary: `source.path`, or the rootfs's init
 * program copied to `scratch`. FailedPreconditionError when there is none.
 */
export async function agentBinaryPath(source: AgentBinarySource, scratch: string): Promise<string> {
  if ("path" in source) {
    const st = await stat(source.path).catch(() => undefined);
    if (!st?.isFile()) {
      throw new FailedPreconditionError(`guest agent ${source.path} is not a file`, {
        hint: "build it with make -C guest/agent all",
      });
    }
    return source.path;
  }
  const init = await findInitProgram(source.fromRootfs);
  if (!init?.ok) {
    throw new FailedPreconditionError(
      `cannot take the guest agent from rootfs ${source.fromRootfs}: ${init ? init.why : "debugfs cannot read it"}`,
      { hint: "set the default rootfs to one built by guest/rootfs/build-rootfs.sh" },
    );
  }
  await run("debugfs", ["-R", `dump -p "${init.path}" "${scratch}"`, source.fromRootfs], {
    timeout: 30_000,
  });
  const st = await stat(scratch).catch(() => undefined);
  if (!st?.size) {
    throw new FailedPreconditionError(
      `cannot copy the guest agent ${init.path} out of rootfs ${source.fromRootfs}`,
    );
  }
  return scratch;
}

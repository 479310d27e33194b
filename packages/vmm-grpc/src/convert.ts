import { create } from "@bufbuild/protobuf";
import {
  type CreateSandboxSpec,
  InvalidArgumentError,
  type NetworkMode,
  type NetworkPolicy,
  type ProcessOutput,
  type ProcessSpec,
  quote,
  type SandboxEvent,
  type SandboxView,
  UnimplementedError,
} from "@vmm/core";
import * as pb from "@vmm/proto";

const seconds = (d: Date | undefined): bigint => (d ? BigInt(Math.floor(d.getTime() / 1000)) : 0n);

/** Proto → domain for Create. Validation that needs no daemon state happens here, naming the field. */
export function createSpecFromProto(req: pb.CreateSandboxRequest): CreateSandboxSpec {
  if (req.mounts.length > 0) {
    throw new UnimplementedError("mounts: host mounts are not supported by this daemon yet");
  }
  // With an image, env/working_dir/user without cmd apply to the image's Entrypoint + Cmd.
  const hasProcessFields =
    Object.keys(req.env).length > 0 || req.workingDir !== "" || req.user !== "";
  const workload =
    req.cmd.length > 0 || (req.image !== "" && hasProcessFields)
      ? processSpecFromProto({
          cmd: req.cmd,
          env: req.env,
          workingDir: req.workingDir,
          user: req.user,
          tty: false,
          timeoutSeconds: 0,
        })
      : undefined;
  if (workload === undefined && hasProcessFields) {
    throw new InvalidArgumentError(
      "cmd",
      "env, working_dir and user describe the initial workload; give cmd too",
    );
  }
  return {
    ...(req.id !== "" && { id: req.id }),
    labels: req.labels,
    ...(req.kernel !== "" && { kernel: req.kernel }),
    ...(req.rootfs !== "" && { rootfs: req.rootfs }),
    ...(req.image !== "" && { image: req.image }),
    ...(req.bootArgs !== "" && { bootArgs: req.bootArgs }),
    ...(req.limits && req.limits.vcpus !== 0 && { vcpus: req.limits.vcpus }),
    ...(req.limits &&
      req.limits.memoryMib !== 0n && { memoryMib: memoryFromProto(req.limits.memoryMib) }),
    ...(req.network &&
      req.network.mode !== "" && { network: networkModeFromProto(req.network.mode) }),
    ttlSeconds: req.ttlSeconds,
    ...(workload && { workload }),
    ...(req.sshPublicKey !== undefined && { sshPublicKey: req.sshPublicKey }),
    ...(req.autoPauseSeconds !== 0 && { autoPauseSeconds: req.autoPauseSeconds }),
    ...(req.networkPolicy && { networkPolicy: networkPolicyFromProto(req.networkPolicy) }),
  };
}

function memoryFromProto(mib: bigint): number {
  if (mib > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError("limits.memory_mib", `${mib} is not a usable amount of memory`);
  }
  return Number(mib);
}

export function networkModeFromProto(mode: string): NetworkMode {
  if (mode === "tap" || mode === "none") return mode;
  throw new InvalidArgumentError(
    "network.mode",
    `unknown mode ${quote(mode)}; use "tap" or "none"`,
  );
}

/** Proto → domain for Run/Exec processes (fields shared by RunRequest and ExecRequest). */
export function processSpecFromProto(req: {
  cmd: readonly string[];
  env: Record<string, string>;
  workingDir: string;
  user: string;
  tty: boolean;
  ttySize?: pb.TerminalSize | undefined;
  timeoutSeconds: number;
  tag?: string;
}): ProcessSpec {
  // An empty cmd is refused by vmm-core unless the sandbox's image supplies one.
  return {
    cmd: req.cmd,
    env: req.env,
    ...(req.workingDir !== "" && { workingDir: req.workingDir }),
    ...(req.user !== "" && { user: req.user }),
    tty: req.tty,
    ...(req.ttySize && { ttySize: { cols: req.ttySize.width, rows: req.ttySize.height } }),
    timeoutSeconds: req.timeoutSeconds,
    ...(req.tag !== undefined && req.tag !== "" && { tag: req.tag }),
  };
}

export function sandboxInfoToProto(v: SandboxView): pb.SandboxInfo {
  return create(pb.SandboxInfoSchema, {
    id: v.id,
    state: v.state,
    labels: { ...v.labels },
    limits: { vcpus: v.vcpus, memoryMib: BigInt(v.memoryMib) },
    ...(v.network && {
      network: {
        ipAddress: v.network.ipAddress,
        gateway: v.network.gateway,
        tapName: v.network.tapName,
        guestIp: v.network.guestIp,
        netns: v.network.netns,
      },
    }),
    createdAt: seconds(v.createdAt),
    readyAt: seconds(v.readyAt),
    lastExitedAt: seconds(v.lastExitedAt),
    lastExitCode: v.lastExitCode ?? 0,
    error: v.error ?? "",
    createdFrom: v.createdFrom,
    snapshotId: v.snapshotId ?? "",
    kernel: v.kernel,
    rootfs: v.rootfs,
    bootArgs: v.bootArgs,
    pid: BigInt(v.pid ?? 0),
    expiresAt: seconds(v.expiresAt),
    pausedAt: seconds(v.pausedAt),
    diskBytes: BigInt(v.diskBytes),
    ...(v.networkPolicy && { networkPolicy: networkPolicyToProto(v.networkPolicy) }),
    exposedPorts: v.exposedPorts.map((p) => ({
      guestPort: p.guestPort,
      hostAddress: p.hostAddress,
    })),
    image: v.image ?? "",
    imageDigest: v.imageDigest ?? "",
  });
}

/**
 * A NetworkPolicy message as the domain's policy. Absent (`undefined`) is
 * the caller's choice to give none; a present message is taken as written,
 * so an unset `internet` is false (no egress except allow_out).
 */
export function networkPolicyFromProto(p: pb.NetworkPolicy): NetworkPolicy {
  return { allowOut: [...p.allowOut], denyOut: [...p.denyOut], internet: p.internet };
}

export function networkPolicyToProto(p: NetworkPolicy): pb.NetworkPolicy {
  return create(pb.NetworkPolicySchema, {
    allowOut: [...p.allowOut],
    denyOut: [...p.denyOut],
    internet: p.internet,
  });
}

export function sandboxSummaryToProto(v: SandboxView): pb.SandboxSummary {
  return create(pb.SandboxSummarySchema, {
    id: v.id,
    state: v.state,
    labels: { ...v.labels },
    ipAddress: v.network?.ipAddress ?? "",
    createdAt: seconds(v.createdAt),
  });
}

export function sandboxEventToProto(e: SandboxEvent): pb.SandboxEvent {
  return create(pb.SandboxEventSchema, {
    sandboxId: e.sandboxId,
    action: e.action,
    timestamp: e.timestampNs,
    attributes: { ...e.attributes },
  });
}

/** Domain → proto for one piece of process output (RunOutput and ExecOutput share fields). */
export function processOutputFields(out: ProcessOutput): {
  stream: string;
  data: Uint8Array;
  exitCode: number;
  done: boolean;
} {
  if (out.kind === "exit")
    return { stream: "exit", data: new Uint8Array(0), exitCode: out.exitCode, done: true };
  return { stream: out.kind, data: out.data, exitCode: 0, done: false };
}

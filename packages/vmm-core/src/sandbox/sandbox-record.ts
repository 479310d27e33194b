import type { NetworkPolicy } from "../network/index.js";
import type { Sandbox, SandboxImage } from "./sandbox.js";
import type { CreatedFrom, NetworkMode, ProcessSpec, SandboxStateName } from "./types.js";

/**
 * The persisted record of one sandbox (`sandbox.json` in its directory,
 * written atomically on every transition). The in-memory registry is a cache
 * of these; a restarted daemon reads them back.
 */
export interface SandboxRecord {
  readonly formatVersion: 1;
  readonly id: string;
  readonly state: SandboxStateName;
  /** Normalized request, compared for idempotent Create. */
  readonly requestKey: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly network: NetworkMode;
  readonly slotIndex: number | undefined;
  readonly ttlSeconds: number;
  readonly workload: ProcessSpec | undefined;
  readonly pid: number | undefined;
  /**
   * Start time of `pid` (field 22 of `/proc/<pid>/stat`), so a restarted daemon
   * never adopts a process that reused the pid. Absent in records of earlier
   * versions: the process's cwd and `--id` are then the only check.
   */
  readonly pidStartTime?: string | undefined;
  /** A daemon-internal sandbox (golden build): never listed; removed at restart. */
  readonly hidden?: boolean | undefined;
  readonly createdFrom: CreatedFrom;
  readonly snapshotId: string | undefined;
  readonly createdAt: string;
  readonly readyAt: string | undefined;
  readonly lastExitedAt: string | undefined;
  readonly lastExitCode: number | undefined;
  readonly error: string | undefined;
  /** When a paused sandbox was paused (ISO). */
  readonly pausedAt?: string | undefined;
  /** Auto-pause after this many idle seconds (0 = never); absent in older records. */
  readonly autoPauseSeconds?: number | undefined;
  /** The egress policy given at Create or by UpdateNetworkPolicy; absent = none (internet on). */
  readonly networkPolicy?: NetworkPolicy | undefined;
  /** Exposed ports, reopened on the same host address (if free) by a restarted daemon. */
  readonly exposedPorts?: readonly { guestPort: number; hostAddress: string }[] | undefined;
  /** The OCI image it was created from and its process defaults; absent for a plain rootfs. */
  readonly image?: SandboxImage | undefined;
}

/** Parses a record read from disk; returns undefined for anything that is not one. */
export function parseSandboxRecord(value: unknown): SandboxRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Partial<SandboxRecord>;
  if (r.formatVersion !== 1 || typeof r.id !== "string" || typeof r.state !== "string")
    return undefined;
  return r as SandboxRecord;
}

/** The record of `s` as it is now. */
export function recordOf(s: Sandbox): SandboxRecord {
  const spec = s.spec;
  return {
    formatVersion: 1,
    id: s.id,
    state: s.state,
    requestKey: spec.requestKey,
    labels: spec.labels,
    kernel: spec.kernel,
    rootfs: spec.rootfs,
    bootArgs: spec.bootArgs,
    vcpus: spec.vcpus,
    memoryMib: spec.memoryMib,
    network: spec.network,
    slotIndex: s.tap?.index,
    ttlSeconds: spec.ttlSeconds,
    workload: spec.workload,
    pid: s.vm?.pid,
    pidStartTime: s.vm?.startTime,
    ...(spec.hidden && { hidden: true }),
    createdFrom: spec.createdFrom,
    snapshotId: spec.snapshotId,
    createdAt: spec.createdAt.toISOString(),
    readyAt: s.readyAt?.toISOString(),
    lastExitedAt: s.lastExitedAt?.toISOString(),
    lastExitCode: s.lastExitCode,
    error: s.error,
    pausedAt: s.pausedAt?.toISOString(),
    autoPauseSeconds: spec.autoPauseSeconds,
    ...(s.networkPolicy && { networkPolicy: s.networkPolicy }),
    ...(spec.image && { image: spec.image }),
    ...(s.ports.size > 0 && {
      exposedPorts: [...s.ports.values()].map((p) => ({
        guestPort: p.guestPort,
        hostAddress: p.hostAddress,
      })),
    }),
  };
}

import type { EventAction, SandboxStateName } from "@vmm/proto/wire";
import type { NetworkPolicy } from "../network/index.js";

// The contract's lists live in @vmm/proto/wire, shared with vmm-grpc, vmm-cli and tests.
export type { EventAction, SandboxStateName };

/** How a sandbox came to be: booted, restored from a snapshot, or restored from a golden snapshot. */
export type CreatedFrom = "boot" | "restore" | "golden";

export type NetworkMode = "tap" | "none";

/** What a caller asks for in Create. Absent fields take the daemon's defaults. */
export interface CreateSandboxSpec {
  /** Caller-chosen id (idempotency key); generated when absent. */
  readonly id?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly kernel?: string;
  readonly rootfs?: string;
  readonly bootArgs?: string;
  readonly vcpus?: number;
  readonly memoryMib?: number;
  readonly network?: NetworkMode;
  /** 0 = never expires. */
  readonly ttlSeconds: number;
  /** Initial workload, started once the sandbox is ready; empty = none. */
  readonly workload?: ProcessSpec;
  /** Pause after this many idle seconds; absent or 0 = the daemon's default. */
  readonly autoPauseSeconds?: number;
  readonly sshPublicKey?: string;
  /** Egress policy (mode tap); absent = internet on, nothing denied. */
  readonly networkPolicy?: NetworkPolicy;
  /**
   * OCI image reference to boot from instead of a rootfs (never both): its
   * rootfs is built once per manifest digest, and its config gives the
   * defaults of the sandbox's processes (docs/images.md).
   */
  readonly image?: string;
}

/** A process to start in a sandbox's guest. */
export interface ProcessSpec {
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  readonly user?: string;
  readonly tty: boolean;
  readonly ttySize?: { readonly cols: number; readonly rows: number };
  /** 0 = no timeout. */
  readonly timeoutSeconds: number;
  /** Name to find the process by (ListProcesses, SignalProcess); unique among running processes. */
  readonly tag?: string;
}

/** The network a sandbox is reachable at. */
export interface SandboxNetworkView {
  /** Host-reachable address (DNATed to the guest). */
  readonly ipAddress: string;
  readonly gateway: string;
  readonly tapName: string;
  readonly guestIp: string;
  readonly netns: string;
}

/** A read-only snapshot of one sandbox, as Inspect returns it. */
export interface SandboxView {
  readonly id: string;
  readonly state: SandboxStateName;
  readonly labels: Readonly<Record<string, string>>;
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly network: SandboxNetworkView | undefined;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly createdAt: Date;
  readonly readyAt: Date | undefined;
  readonly lastExitedAt: Date | undefined;
  readonly lastExitCode: number | undefined;
  readonly error: string | undefined;
  readonly createdFrom: CreatedFrom;
  readonly snapshotId: string | undefined;
  readonly pid: number | undefined;
  readonly expiresAt: Date | undefined;
  /** When it was paused; undefined unless paused. */
  readonly pausedAt: Date | undefined;
  /** Bytes it holds under data_dir: its disk, and its memory and vmstate files once paused. */
  readonly diskBytes: number;
  /** The egress policy in force (mode tap; the default when none was given); undefined for mode none. */
  readonly networkPolicy: NetworkPolicy | undefined;
  /** Exposed guest ports and their host addresses, by guest port. */
  readonly exposedPorts: readonly { readonly guestPort: number; readonly hostAddress: string }[];
  /** The OCI image reference it was created from (Create `image`); undefined for a plain rootfs. */
  readonly image: string | undefined;
  /** The image's manifest digest (`sha256:…`); undefined for a plain rootfs. */
  readonly imageDigest: string | undefined;
}

/** One lifecycle event. */
export interface SandboxEvent {
  readonly sandboxId: string;
  readonly action: EventAction;
  /** Unix time in nanoseconds. */
  readonly timestampNs: bigint;
  readonly attributes: Readonly<Record<string, string>>;
}

/** Output of a process running in a guest, in order; `exit` is always last. */
export type ProcessOutput =
  | { readonly kind: "stdout" | "stderr"; readonly data: Uint8Array }
  | {
      readonly kind: "exit";
      /** Exit status; 128+N when killed by signal N. */
      readonly exitCode: number;
      readonly signal: string | undefined;
      readonly timedOut: boolean;
    };

/** An interactive process in a guest. */
export interface ProcessSession {
  readonly output: AsyncIterable<ProcessOutput>;
  writeStdin(data: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
}

/** A read-only description of one snapshot in the catalog. */
export interface SnapshotView {
  readonly id: string;
  readonly originSandboxId: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly dir: string;
  readonly createdAt: Date;
  readonly usable: boolean;
  readonly unusableReason: string | undefined;
  readonly sizeBytes: number;
  /** Manifest digest of the OCI image the origin sandbox was created from; undefined otherwise. */
  readonly imageDigest: string | undefined;
}

import { isAbsolute, relative } from "node:path";
import { DEFAULT_NETWORK_POLICY } from "../network/index.js";
import type { SnapshotEntry } from "../snapshot/index.js";
import type { Sandbox } from "./sandbox.js";
import type { SandboxView, SnapshotView } from "./types.js";

/** Where the daemon's host paths are, and whether clients may see them. */
export interface ViewOptions {
  readonly imagesDir: string;
  readonly dataDir: string;
  /**
   * Put host details (Firecracker pids, absolute image and snapshot paths) in
   * views and failure texts (config `grpc.expose_host_details`).
   */
  readonly exposeHostDetails: boolean;
}

/** How sandboxes, snapshots and failure texts look to clients. */
export class Views {
  constructor(private readonly opts: ViewOptions) {}

  /** The view of `s` (the same object until `s` changes). */
  sandbox(s: Sandbox): SandboxView {
    return s.view((x) => this.build(x));
  }

  snapshot(e: SnapshotEntry): SnapshotView {
    const meta = e.meta;
    return {
      id: e.id,
      originSandboxId: meta?.originSandboxId ?? "",
      name: meta?.name ?? "",
      labels: meta?.labels ?? {},
      dir: this.opts.exposeHostDetails ? e.dir : relative(this.opts.dataDir, e.dir),
      createdAt: meta ? new Date(meta.createdAt) : new Date(0),
      usable: e.state === "usable",
      unusableReason: e.state === "unusable" ? e.reason : undefined,
      sizeBytes: snapshotBytes(e),
      imageDigest: meta?.image?.manifestDigest,
    };
  }

  /**
   * A failure text as clients see it: its first line only (Firecracker launch
   * errors append the process's console output), at most 1 KiB, and without
   * the daemon's directories unless host details are exposed.
   */
  clientText(text: string): string {
    let t = text.split("\n", 1)[0] ?? "";
    if (!this.opts.exposeHostDetails) {
      t = t
        .replaceAll(this.opts.imagesDir, "<images_dir>")
        .replaceAll(this.opts.dataDir, "<data_dir>");
    }
    return t.length > 1024 ? `${t.slice(0, 1024)}… (truncated; the daemon log has it whole)` : t;
  }

  private build(s: Sandbox): SandboxView {
    const spec = s.spec;
    const slot = s.tap;
    return {
      id: s.id,
      state: s.shownState,
      labels: spec.labels,
      vcpus: spec.vcpus,
      memoryMib: spec.memoryMib,
      network:
        slot &&
        Object.freeze({
          ipAddress: slot.hostIp,
          gateway: slot.gatewayIp,
          tapName: slot.tapName,
          guestIp: slot.guestIp,
          netns: slot.netns,
        }),
      kernel: this.imageName(spec.kernel),
      rootfs: this.imageName(spec.rootfs),
      bootArgs: spec.bootArgs,
      createdAt: spec.createdAt,
      readyAt: s.readyAt,
      lastExitedAt: s.lastExitedAt,
      lastExitCode: s.lastExitCode,
      error: s.error,
      createdFrom: spec.createdFrom,
      snapshotId: spec.snapshotId,
      pid: this.opts.exposeHostDetails ? s.vm?.pid : undefined,
      pausedAt: s.pausedAt,
      diskBytes: spec.diskBytes + s.pausedBytes,
      networkPolicy:
        spec.network === "tap" ? (s.networkPolicy ?? DEFAULT_NETWORK_POLICY) : undefined,
      exposedPorts: [...s.ports.values()]
        .map((p) => ({ guestPort: p.guestPort, hostAddress: p.hostAddress }))
        .sort((a, b) => a.guestPort - b.guestPort),
      image: spec.image?.reference,
      imageDigest: spec.image?.manifestDigest,
      expiresAt:
        spec.ttlSeconds > 0
          ? new Date(spec.createdAt.getTime() + spec.ttlSeconds * 1000)
          : undefined,
    };
  }

  /**
   * How views name an image: its name under images_dir unless host details
   * are exposed (a path outside images_dir is the client's own input).
   */
  private imageName(path: string): string {
    if (this.opts.exposeHostDetails) return path;
    const rel = relative(this.opts.imagesDir, path);
    if (rel !== "" && !rel.startsWith("..") && !isAbsolute(rel)) return rel;
    // An image's cached rootfs lives under data_dir: named like snapshot dirs, relative to it.
    const inData = relative(this.opts.dataDir, path);
    return inData !== "" && !inData.startsWith("..") && !isAbsolute(inData) ? inData : path;
  }
}

/** Bytes a snapshot's data files take (apparent sizes from its meta; 0 when unreadable). */
export function snapshotBytes(e: SnapshotEntry): number {
  return e.meta ? Object.values(e.meta.files).reduce((n, f) => n + f.size, 0) : 0;
}

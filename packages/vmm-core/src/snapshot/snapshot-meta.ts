/**
 * `meta.json`: the record of one snapshot, `<data_dir>/snapshots/<id>/meta.json`.
 * Schema documented in docs/storage.md ("Snapshot catalog"). Written once, at
 * commit, atomically; never modified afterwards.
 */
import type { NetworkPolicy } from "../network/index.js";
import type { ImageIdentity } from "../storage/image.js";

/** Current `formatVersion`. A newer one found on disk makes the entry unusable. */
export const SNAPSHOT_FORMAT_VERSION = 1;

/** File names inside a snapshot dir. */
export const SNAPSHOT_FILES = {
  vmstate: "vmstate",
  mem: "mem",
  rootfs: "rootfs.ext4",
  meta: "meta.json",
} as const;

/** The three data files of a snapshot. */
export type SnapshotDataFile = "vmstate" | "mem" | "rootfs";
/** Keys of {@link SnapshotMeta.files}, in a fixed order. */
export const SNAPSHOT_DATA_FILES: readonly SnapshotDataFile[] = ["vmstate", "mem", "rootfs"];

/** Size and checksum of one snapshot file. */
export interface SnapshotFileInfo {
  /** Bytes (apparent size). */
  size: number;
  /** Lowercase hex SHA-256 of the content. */
  sha256: string;
}

/** An image the snapshot was made from, with the identity it had then. */
export interface ImageRef {
  path: string;
  identity: ImageIdentity;
}

/** Guest-side network settings restored as-is with the snapshot. */
export interface GuestNetwork {
  guestIp: string;
  guestMac: string;
  tapName: string;
}

/** Content of meta.json. Every field is immutable once committed. */
export interface SnapshotMeta {
  formatVersion: number;
  /** Snapshot id = directory name (`snapshot_id` rules). */
  id: string;
  /** User-given name (`snapshot_name` rules); not unique. */
  name: string;
  /** Sandbox that was checkpointed. */
  originSandboxId: string;
  labels: Record<string, string>;
  /** RFC 3339, UTC, time the snapshot was begun (VM paused). */
  createdAt: string;
  kernel: ImageRef;
  /** Base rootfs image the origin sandbox's disk was cloned from. */
  rootfsBase: ImageRef;
  bootArgs: string;
  vcpus: number;
  memoryMib: number;
  /** Network mode of the origin sandbox (e.g. "isolated", "none"). */
  networkMode: string;
  /** Guest network, null without a NIC. */
  guestNetwork: GuestNetwork | null;
  /** Firecracker version that wrote vmstate (e.g. "1.14.2"). */
  firecrackerVersion: string;
  files: Record<SnapshotDataFile, SnapshotFileInfo>;
  /** Hidden from ListSnapshots (golden snapshots). */
  hidden: boolean;
  /** Key of the golden-snapshot cache this entry belongs to, if any. */
  goldenKey?: string;
  /**
   * The origin sandbox's egress policy, when it had one: a Restore applies it
   * (absent in older metas and for sandboxes without one: the default).
   */
  networkPolicy?: NetworkPolicy;
  /**
   * The OCI image the origin sandbox was created from (reference, manifest
   * digest, process defaults): a Restore carries it to the new sandbox, and
   * RemoveImage refuses while a snapshot names it. Absent otherwise.
   */
  image?: SnapshotImage;
}

/** The image of a snapshot's origin sandbox (see {@link SnapshotMeta.image}). */
export interface SnapshotImage {
  reference: string;
  manifestDigest: string;
  defaults: {
    cmd: string[];
    env: Record<string, string>;
    workingDir?: string;
    user?: string;
  };
}

/** What the caller describes when beginning a snapshot; the catalog fills in the rest. */
export type SnapshotSpec = Omit<
  SnapshotMeta,
  "formatVersion" | "id" | "createdAt" | "firecrackerVersion" | "files" | "hidden" | "labels"
> & {
  /** Snapshot id; default a generated `snap-…` id. */
  id?: string;
  /** Default {}. */
  labels?: Record<string, string>;
  /** Default false. */
  hidden?: boolean;
};

/**
 * Checks the shape of a parsed meta.json; returns it typed or throws an Error
 * whose message names the first bad field.
 */
export function parseSnapshotMeta(value: unknown): SnapshotMeta {
  const m = obj(value, "meta.json");
  num(m.formatVersion, "formatVersion");
  str(m.id, "id");
  str(m.name, "name");
  str(m.originSandboxId, "originSandboxId");
  const labels = obj(m.labels, "labels");
  for (const [k, v] of Object.entries(labels)) str(v, `labels.${k}`);
  str(m.createdAt, "createdAt");
  if (Number.isNaN(Date.parse(m.createdAt as string)))
    throw new Error("createdAt: not an RFC 3339 time");
  imageRef(m.kernel, "kernel");
  imageRef(m.rootfsBase, "rootfsBase");
  str(m.bootArgs, "bootArgs");
  num(m.vcpus, "vcpus");
  num(m.memoryMib, "memoryMib");
  str(m.networkMode, "networkMode");
  if (m.guestNetwork !== null) {
    const g = obj(m.guestNetwork, "guestNetwork");
    str(g.guestIp, "guestNetwork.guestIp");
    str(g.guestMac, "guestNetwork.guestMac");
    str(g.tapName, "guestNetwork.tapName");
  }
  str(m.firecrackerVersion, "firecrackerVersion");
  const files = obj(m.files, "files");
  for (const f of SNAPSHOT_DATA_FILES) {
    const info = obj(files[f], `files.${f}`);
    num(info.size, `files.${f}.size`);
    str(info.sha256, `files.${f}.sha256`);
    if (!/^[0-9a-f]{64}$/.test(info.sha256 as string))
      throw new Error(`files.${f}.sha256: not a hex SHA-256`);
  }
  if (typeof m.hidden !== "boolean") throw new Error("hidden: expected a boolean");
  if (m.goldenKey !== undefined) str(m.goldenKey, "goldenKey");
  if (m.image !== undefined) {
    const i = obj(m.image, "image");
    str(i.reference, "image.reference");
    str(i.manifestDigest, "image.manifestDigest");
    const d = obj(i.defaults, "image.defaults");
    if (!Array.isArray(d.cmd)) throw new Error("image.defaults.cmd: expected an array");
    for (const v of Object.values(obj(d.env, "image.defaults.env"))) str(v, "image.defaults.env");
  }
  if (m.networkPolicy !== undefined) {
    const p = obj(m.networkPolicy, "networkPolicy");
    for (const list of ["allowOut", "denyOut"] as const) {
      if (!Array.isArray(p[list])) throw new Error(`networkPolicy.${list}: expected an array`);
      for (const [i, e] of (p[list] as unknown[]).entries()) str(e, `networkPolicy.${list}[${i}]`);
    }
    if (typeof p.internet !== "boolean")
      throw new Error("networkPolicy.internet: expected a boolean");
  }
  return m as unknown as SnapshotMeta;
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new Error(`${field}: expected an object`);
  return v as Record<string, unknown>;
}
function str(v: unknown, field: string): void {
  if (typeof v !== "string") throw new Error(`${field}: expected a string`);
}
function num(v: unknown, field: string): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new Error(`${field}: expected a non-negative number`);
}
function imageRef(v: unknown, field: string): void {
  const r = obj(v, field);
  str(r.path, `${field}.path`);
  const id = obj(r.identity, `${field}.identity`);
  num(id.size, `${field}.identity.size`);
  num(id.mtimeMs, `${field}.identity.mtimeMs`);
  num(id.ino, `${field}.identity.ino`);
}

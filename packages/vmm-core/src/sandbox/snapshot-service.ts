import { FailedPreconditionError, ResourceExhaustedError, UnimplementedError } from "../errors.js";
import { validateId } from "../internal/index.js";
import type { SnapshotCatalog } from "../snapshot/index.js";
import type { Admission } from "./admission.js";
import { resolveSandboxImage, type SandboxContext } from "./context.js";
import { compareByCreation } from "./list-order.js";
import { validateLabels } from "./request-limits.js";
import { defaultSnapshotName } from "./snapshot-name.js";
import { vmIsAlive } from "./state-machine.js";
import type { SnapshotView } from "./types.js";
import { snapshotBytes } from "./views.js";

/** What Checkpoint is asked for. */
export interface CheckpointRequest {
  readonly sandboxId: string;
  readonly name: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** A golden build's snapshot: not listed, not counted against limits. */
  readonly hidden?: boolean;
  readonly goldenKey?: string;
}

/**
 * The snapshot API: Checkpoint, ListSnapshots, DeleteSnapshot, over the
 * snapshot catalog (Restore is a Create: the sandbox factory). Without a
 * catalog every call answers UNIMPLEMENTED.
 */
export class SnapshotService {
  /** The catalog once open (golden lookups before then simply boot). */
  #catalog: SnapshotCatalog | undefined;
  readonly #opening: Promise<SnapshotCatalog> | undefined;

  constructor(
    private readonly ctx: SandboxContext,
    private readonly admission: Admission,
  ) {
    const c = ctx.opts.catalog;
    if (c instanceof Promise) {
      this.#opening = c;
      c.then(
        (opened) => {
          this.#catalog = opened;
        },
        (err: unknown) => ctx.log.error({ err }, "opening the snapshot catalog failed"),
      );
    } else {
      this.#catalog = c;
      this.#opening = c && Promise.resolve(c);
    }
  }

  /** True when this daemon has snapshots at all. */
  get enabled(): boolean {
    return this.#opening !== undefined;
  }

  /** The catalog if it is open now. */
  get current(): SnapshotCatalog | undefined {
    return this.#catalog;
  }

  /** The catalog, waiting for it to open; UNIMPLEMENTED when snapshots are off. */
  async catalog(): Promise<SnapshotCatalog> {
    if (this.#catalog) return this.#catalog;
    if (!this.#opening) throw new UnimplementedError("snapshots are not enabled in this daemon");
    return await this.#opening;
  }

  /** Apparent bytes of every snapshot in the catalog (for limits.max_total_disk_gib). */
  diskBytes(): number {
    let n = 0;
    for (const e of this.#catalog?.list() ?? []) n += snapshotBytes(e);
    return n;
  }

  /**
   * Pause → full snapshot → copy of the writable disk → resume. Files appear
   * in the catalog only once complete (temp dir + rename). The VM is resumed
   * whatever fails after the pause.
   */
  async checkpoint(req: CheckpointRequest): Promise<SnapshotView> {
    const { opts, registry, views } = this.ctx;
    validateLabels("labels", req.labels);
    const name = req.name === undefined ? "" : validateId("snapshot_name", req.name, "name");
    const catalog = await this.catalog();
    const s = registry.get(req.sandboxId);
    if (s.phase.kind !== "ready") {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is ${s.phase.kind === "checkpointing" ? "being checkpointed" : s.state}; Checkpoint needs state ready`,
      );
    }
    const vm = s.vm;
    if (!vm) throw new FailedPreconditionError(`sandbox ${s.id} has no running microVM`);
    const maxSnapshots = opts.limits.maxSnapshotsPerSandbox;
    if (!req.hidden && maxSnapshots > 0) {
      const taken = catalog.list({ originSandboxId: s.id }).length;
      if (taken >= maxSnapshots) {
        throw new ResourceExhaustedError(
          `snapshots: sandbox ${s.id} has ${taken} snapshots, the most allowed (limits.max_snapshots_per_sandbox)`,
          { hint: "delete some of its snapshots first" },
        );
      }
    }
    const spec = s.spec;
    // Memory + disk copy (+ a small vmstate); golden snapshots have their own budget.
    using _disk = req.hidden
      ? undefined
      : this.admission.reserveDisk(spec.memoryMib * 2 ** 20 + spec.diskBytes);
    s.enter({ kind: "checkpointing" });
    const started = performance.now();
    try {
      const [kernel, rootfsBase] = await Promise.all([
        resolveSandboxImage(opts, spec.kernel, "kernel", { trusted: true }),
        resolveSandboxImage(opts, spec.rootfs, "rootfs", { trusted: true }),
      ]);
      const slot = s.tap;
      await using pending = await catalog.beginSnapshot({
        name: name || defaultSnapshotName(s.id, Date.now()),
        originSandboxId: s.id,
        labels: { ...req.labels },
        kernel: { path: kernel.path, identity: kernel.identity },
        rootfsBase: { path: rootfsBase.path, identity: rootfsBase.identity },
        bootArgs: spec.bootArgs,
        vcpus: spec.vcpus,
        memoryMib: spec.memoryMib,
        networkMode: spec.network,
        guestNetwork: slot
          ? { guestIp: slot.guestIp, guestMac: slot.guestMac, tapName: slot.tapName }
          : null,
        ...(req.hidden !== undefined && { hidden: req.hidden }),
        ...(req.goldenKey !== undefined && { goldenKey: req.goldenKey }),
        ...(s.networkPolicy && { networkPolicy: s.networkPolicy }),
        ...(spec.image && {
          image: {
            reference: spec.image.reference,
            manifestDigest: spec.image.manifestDigest,
            defaults: {
              ...spec.image.defaults,
              cmd: [...spec.image.defaults.cmd],
              env: { ...spec.image.defaults.env },
            },
          },
        }),
      });
      const rel = await pending.relativePathsFrom(s.dir.path);
      // Firecracker writes where it is told, relative to its cwd (the sandbox dir).
      const target = rel ?? { vmstate: s.dir.relative.vmstate, mem: s.dir.relative.mem };
      const call = { timeoutMs: Math.max(opts.runtime.apiTimeoutMs, 120_000) };
      await vm.snapshot(
        target,
        call,
        async () => {
          if (!rel) {
            await pending.adoptFile(s.dir.absolute.vmstate, "vmstate");
            await pending.adoptFile(s.dir.absolute.mem, "mem");
          }
          await pending.addRootfs(s.dir.absolute.rootfs, opts.cloner.mode);
        },
        (err: unknown) => s.log.error({ err }, "resuming after a checkpoint failed"),
      );
      const meta = await pending.commit();
      const entry = catalog.get(meta.id);
      // Restores of a new snapshot are likely: the first need not wait for a disk copy.
      void opts.cloner.prepare(entry.paths.rootfs);
      registry.publish(s, "checkpointed", {
        snapshot_id: meta.id,
        duration_ms: String(Math.round(performance.now() - started)),
      });
      return views.snapshot(entry);
    } finally {
      s.endCheckpoint();
    }
  }

  /** The snapshots matching `filter`, in `compareByCreation` order (oldest first). */
  async list(filter: {
    originSandboxId?: string;
    labels: Readonly<Record<string, string>>;
  }): Promise<SnapshotView[]> {
    validateLabels("labels", filter.labels);
    return (await this.catalog())
      .list({
        ...(filter.originSandboxId !== undefined && { originSandboxId: filter.originSandboxId }),
        labels: { ...filter.labels },
      })
      .map((e) => this.ctx.views.snapshot(e))
      .sort(compareByCreation);
  }

  /**
   * Deletes a snapshot. Restored sandboxes hold their own hard link (or
   * reflink) of the memory file, so deleting is safe while they run; a
   * running sandbox without one blocks the delete.
   */
  async delete(snapshotId: string): Promise<void> {
    const catalog = await this.catalog();
    validateId("snapshot_id", snapshotId, "snapshot_id");
    await this.ctx.opts.cloner.discard(catalog.get(snapshotId).paths.rootfs);
    await catalog.delete(snapshotId, {
      usersOf: (sid) =>
        [...this.ctx.registry.all()]
          .filter((s) => s.spec.snapshotId === sid && vmIsAlive(s.state))
          .map((s) => s.id),
    });
  }
}

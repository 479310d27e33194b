import { randomBytes } from "node:crypto";
import { AgentClient } from "../agent/index.js";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  UnimplementedError,
} from "../errors.js";
import {
  type ImageProcessDefaults,
  imageProcessDefaults,
  withImageDefaults,
} from "../images/image-defaults.js";
import { deadlineAfter, generateId, validateId } from "../internal/index.js";
import type {
  NetworkPolicy,
  NetworkSlot,
  ResolvedEgressPolicy,
  TapSlot,
} from "../network/index.js";
import type { UsableSnapshot } from "../snapshot/index.js";
import {
  type CloneResult,
  KernelConfigCheck,
  linkOrClone,
  type ResolvedImage,
  RootfsInitCheck,
  SandboxDir,
} from "../storage/index.js";
import { MicroVm } from "../vm/microvm.js";
import type { Admission, Reservation } from "./admission.js";
import { errorText, resolveSandboxImage, type SandboxContext } from "./context.js";
import type { GoldenPool } from "./golden-pool.js";
import type { SandboxLifecycle } from "./lifecycle.js";
import type { NetworkPolicies } from "./network-policies.js";
import type { SandboxDefaults } from "./options.js";
import { validateCreateRequest, validateLabels, validateProcessSpec } from "./request-limits.js";
import { Sandbox, type SandboxImage, type SandboxSpec } from "./sandbox.js";
import type { SnapshotService } from "./snapshot-service.js";
import { stableKey } from "./stable-key.js";
import type { CreateOutcomes, CreatePath } from "./telemetry.js";
import type { CreateSandboxSpec, NetworkMode, ProcessSpec, SandboxView } from "./types.js";
import type { Workloads } from "./workloads.js";

/** What Restore is asked for. */
export interface RestoreRequest {
  readonly id: string | undefined;
  readonly snapshotId: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ttlSeconds: number;
  readonly requestKey?: string;
}

/** A Create request with the daemon's defaults applied and its sizes checked. */
export type ResolvedSpec = SandboxDefaults;

/**
 * Makes sandboxes: Create (boot, or restore of a golden snapshot) and
 * Restore. Each takes its resources in order — admission, the id, a network
 * slot, a directory — registering an undo right after each, so a failure at
 * any step gives back exactly what was taken; once registered, the sandbox
 * owns them (its removal frees them). The VM then starts in the background
 * (Create) or before the answer (Restore).
 */
export class SandboxFactory {
  #nextCid = 3;
  readonly #kernelCheck = new KernelConfigCheck();
  readonly #initCheck = new RootfsInitCheck();
  /** Manifest digest → Creates between resolving that image and registering their sandbox. */
  readonly #imageCreates = new Map<string, number>();

  constructor(
    private readonly ctx: SandboxContext,
    private readonly deps: {
      readonly admission: Admission;
      readonly snapshots: SnapshotService;
      readonly lifecycle: SandboxLifecycle;
      readonly workloads: Workloads;
      readonly golden: () => GoldenPool | undefined;
      readonly policies: NetworkPolicies;
      /** Told when a user sandbox's Create or Restore ends (metrics). */
      readonly outcomes: CreateOutcomes;
    },
  ) {}

  /**
   * Registers a sandbox in state `starting` (network slot and directory
   * taken) and boots it in the background. Idempotent by caller id.
   */
  async create(
    spec: CreateSandboxSpec,
    options: { hidden?: boolean; signal?: AbortSignal } = {},
  ): Promise<SandboxView> {
    const { registry, views } = this.ctx;
    const called = performance.now();
    if (this.ctx.closing()) throw new UnavailableError("the daemon is shutting down");
    const id = spec.id === undefined ? generateId("sb") : validateId("sandbox_id", spec.id, "id");
    let resolved = this.resolveSpec(spec);
    const requestKey = stableKey({ ...spec, id: undefined });
    const existing = registry.find(id);
    if (existing) {
      if (existing.spec.requestKey === requestKey) return views.sandbox(existing);
      throw new AlreadyExistsError(`sandbox ${id} already exists with a different spec`);
    }
    // Request values are confined to the image roots; config defaults and the daemon's own (hidden) creates are trusted.
    const trusted = (v: string | undefined) => ({ trusted: v === undefined || !!options.hidden });
    const kernel = await this.image(resolved.kernel, "kernel", trusted(spec.kernel));
    // An OCI image: pulled if need be, its rootfs built once per digest (the daemon's own file).
    const fromImage =
      spec.image === undefined ? undefined : await this.ociImage(spec.image, options.signal);
    using _imageLease = fromImage && this.leaseImage(fromImage.image.manifestDigest);
    if (fromImage) resolved = { ...resolved, rootfs: fromImage.rootfsPath };
    const rootfs = await this.image(resolved.rootfs, "rootfs", {
      trusted: fromImage !== undefined || trusted(spec.rootfs).trusted,
    });
    const workload = fromImage
      ? imageWorkload(spec.workload, fromImage.image.defaults)
      : spec.workload;
    await this.requireGuestKernel(kernel);
    await this.requireAgentInit(rootfs, resolved.bootArgs);
    if (registry.taken(id)) {
      await registry.claimSettled(id); // lost a race with the same id: answer as the idempotent repeat
      return this.create(spec, options);
    }
    this.requireNetwork(
      resolved.network,
      'network.mode: "tap" networking is not enabled on this daemon',
    );
    if (spec.networkPolicy && resolved.network !== "tap") {
      throw new FailedPreconditionError(
        "network_policy needs network mode tap: a sandbox with mode none has no egress to police",
      );
    }
    // Resolved before any resource is taken: a bad entry or host name costs nothing.
    const egress = spec.networkPolicy
      ? await this.deps.policies.resolve("network_policy", spec.networkPolicy)
      : undefined;
    // Admission and reservation in one synchronous step, before any await.
    const reservation = options.hidden
      ? undefined
      : this.deps.admission.reserveSandbox({
          vcpus: resolved.vcpus,
          memoryMib: resolved.memoryMib,
          diskBytes: rootfs.identity.size,
        });
    const golden = this.deps.golden();
    const hit: ReturnType<GoldenPool["lookup"]> =
      (!options.hidden && golden?.lookup(resolved, kernel, rootfs)) || {};
    const s = await this.register(
      id,
      resolved.network,
      reservation,
      egress,
      () => ({
        id,
        requestKey,
        labels: { ...spec.labels },
        kernel: kernel.path,
        rootfs: rootfs.path,
        bootArgs: resolved.bootArgs,
        vcpus: resolved.vcpus,
        memoryMib: resolved.memoryMib,
        network: resolved.network,
        ttlSeconds: spec.ttlSeconds,
        workload,
        createdFrom: hit.snapshot ? "golden" : "boot",
        snapshotId: hit.snapshot?.id,
        createdAt: new Date(),
        diskBytes: rootfs.identity.size,
        hidden: options.hidden ?? false,
        autoPauseSeconds: options.hidden
          ? 0
          : spec.autoPauseSeconds || (this.ctx.opts.lifecycle?.autoPauseSeconds ?? 0),
        image: fromImage?.image,
      }),
      spec.networkPolicy,
    );
    const start = hit.snapshot
      ? this.bootFromGolden(s, hit.snapshot, called)
      : this.boot(s, called);
    this.ctx.tasks.track(start.finally(() => reservation?.settled()));
    if (hit.key !== undefined && !hit.snapshot) golden?.ensure(hit.key, resolved, kernel, rootfs);
    return views.sandbox(s);
  }

  /**
   * A new sandbox from a snapshot: its own directory with a clone of the
   * snapshot's disk and links to its vmstate and memory, its own network slot
   * (same guest address in its own namespace), Firecracker started there with
   * `snapshot/load`. Ready when this returns; on failure nothing is left.
   */
  async restore(req: RestoreRequest): Promise<SandboxView> {
    const { registry, views } = this.ctx;
    const called = performance.now();
    if (this.ctx.closing()) throw new UnavailableError("the daemon is shutting down");
    validateLabels("labels", req.labels);
    const catalog = await this.deps.snapshots.catalog();
    const snapshotId = validateId("snapshot_id", req.snapshotId, "snapshot_id");
    const id = req.id === undefined ? generateId("sb") : validateId("sandbox_id", req.id, "id");
    if (registry.taken(id)) throw new AlreadyExistsError(`sandbox ${id} already exists`);
    const snap = await catalog.usableOrThrow(snapshotId);
    if (registry.taken(id)) throw new AlreadyExistsError(`sandbox ${id} already exists`);
    const meta = snap.meta;
    const network: NetworkMode = meta.networkMode === "tap" ? "tap" : "none";
    this.requireNetwork(
      network,
      `snapshot ${snapshotId} was taken with network mode tap, which this daemon has not enabled`,
    );
    // The origin's egress policy comes along: a restored guest is never less restricted.
    const networkPolicy = network === "tap" ? meta.networkPolicy : undefined;
    const egress = networkPolicy
      ? await this.deps.policies.resolve("snapshot network_policy", networkPolicy)
      : undefined;
    // The memory file and vmstate are linked from the snapshot; only the disk is new.
    const reservation = this.deps.admission.reserveSandbox({
      vcpus: meta.vcpus,
      memoryMib: meta.memoryMib,
      diskBytes: meta.files.rootfs.size,
    });
    try {
      const s = await this.register(
        id,
        network,
        reservation,
        egress,
        () => ({
          id,
          requestKey:
            req.requestKey ??
            stableKey({ restore: snapshotId, labels: req.labels, ttl: req.ttlSeconds }),
          labels: { ...req.labels },
          kernel: meta.kernel.path,
          rootfs: meta.rootfsBase.path,
          bootArgs: meta.bootArgs,
          vcpus: meta.vcpus,
          memoryMib: meta.memoryMib,
          network,
          ttlSeconds: req.ttlSeconds,
          workload: undefined,
          createdFrom: "restore",
          snapshotId,
          createdAt: new Date(),
          diskBytes: meta.files.rootfs.size,
          hidden: false,
          autoPauseSeconds: this.ctx.opts.lifecycle?.autoPauseSeconds ?? 0,
          image: meta.image,
        }),
        networkPolicy,
      );
      const started = performance.now();
      try {
        const clone = await this.loadSnapshot(s, snap);
        s.markReady();
        await registry.transition(
          s,
          { kind: "ready" },
          {
            restore_ms: String(Math.round(performance.now() - started)),
            rootfs_clone: cloneKind(clone),
          },
        );
        registry.publish(s, "restored", { snapshot_id: snapshotId });
        this.reportOutcome(s, "restore", true, called);
        void this.ctx.opts.cloner.prepare(snap.paths.rootfs);
        return views.sandbox(s);
      } catch (err) {
        this.reportOutcome(s, "restore", false, called);
        const p = s.phase.kind;
        const removedMeanwhile =
          p === "stopping" || p === "stopped" || registry.removal(s.id) !== undefined;
        // A failed restore leaves nothing behind: the caller got no sandbox.
        if (p === "starting") {
          await this.deps.lifecycle.fail(s, `restore failed: ${errorText(err)}`, {}, err);
        }
        await this.deps.lifecycle
          .remove(s.id, { force: true }, { reason: "restore failed" })
          .catch(() => {});
        // Files vanishing while they are cloned is a race the client lost, not a daemon bug:
        // the snapshot was deleted (NOT_FOUND) or the sandbox removed (FAILED_PRECONDITION).
        if ((err as NodeJS.ErrnoException).code === "ENOENT") {
          if (removedMeanwhile) {
            throw new FailedPreconditionError(
              `sandbox ${id} was removed while it was being restored`,
            );
          }
          await catalog.usableOrThrow(snapshotId);
        }
        throw err;
      }
    } finally {
      reservation.settled();
    }
  }

  /** The defaults applied to a Create request, its sizes and boot args checked. */
  resolveSpec(spec: CreateSandboxSpec): ResolvedSpec {
    const d = this.ctx.opts.defaults;
    const l = this.ctx.opts.limits;
    const vcpus = spec.vcpus ?? d.vcpus;
    const memoryMib = spec.memoryMib ?? d.memoryMib;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > l.maxVcpusPerSandbox) {
      throw new InvalidArgumentError(
        "limits.vcpus",
        `must be from 1 to ${l.maxVcpusPerSandbox}, got ${vcpus}`,
      );
    }
    if (vcpus > 1 && vcpus % 2 === 1) {
      throw new InvalidArgumentError(
        "limits.vcpus",
        `must be 1 or an even number (Firecracker), got ${vcpus}`,
      );
    }
    if (!Number.isInteger(memoryMib) || memoryMib < 16 || memoryMib > l.maxMemoryMibPerSandbox) {
      throw new InvalidArgumentError(
        "limits.memory_mib",
        `must be from 16 to ${l.maxMemoryMibPerSandbox} MiB, got ${memoryMib}`,
      );
    }
    validateCreateRequest(spec);
    if (spec.image !== undefined && spec.rootfs !== undefined) {
      throw new InvalidArgumentError(
        "image",
        "image and rootfs are exclusive: the image's rootfs is built from its layers",
        { hint: "give either image or rootfs" },
      );
    }
    // With an image, an empty cmd means the image's Entrypoint + Cmd: checked once merged.
    if (spec.workload && !(spec.image !== undefined && spec.workload.cmd.length === 0)) {
      validateProcessSpec(spec.workload);
    }
    const bootArgs = spec.bootArgs ?? d.bootArgs;
    if (bootArgs.length > 1500) {
      throw new InvalidArgumentError(
        "boot_args",
        "must be at most 1500 bytes (Firecracker's limit is 2048 with ours added)",
      );
    }
    if (/[\0\n]/.test(bootArgs))
      throw new InvalidArgumentError("boot_args", "must not contain NUL or newlines");
    return {
      vcpus,
      memoryMib,
      kernel: spec.kernel ?? d.kernel,
      rootfs: spec.rootfs ?? d.rootfs,
      bootArgs,
      network: spec.network ?? d.network,
    };
  }

  /** Create's `image`: stored (or pulled), its rootfs built or reused; UNIMPLEMENTED without images. */
  private async ociImage(
    reference: string,
    signal: AbortSignal | undefined,
  ): Promise<{ image: SandboxImage; rootfsPath: string }> {
    const images = this.ctx.opts.images;
    if (!images) {
      throw new UnimplementedError("image: OCI images are not enabled on this daemon", {
        hint: "pass kernel and rootfs (or leave them empty for the defaults)",
      });
    }
    const { image, rootfs } = await images.resolve(reference, signal);
    return {
      image: {
        reference: image.reference,
        manifestDigest: image.manifestDigest,
        defaults: imageProcessDefaults(image.config),
      },
      rootfsPath: rootfs.path,
    };
  }

  /** True while a Create is between resolving this image and registering its sandbox. */
  creatingFromImage(manifestDigest: string): boolean {
    return (this.#imageCreates.get(manifestDigest) ?? 0) > 0;
  }

  private leaseImage(digest: string): Disposable {
    this.#imageCreates.set(digest, (this.#imageCreates.get(digest) ?? 0) + 1);
    return {
      [Symbol.dispose]: () => {
        const n = (this.#imageCreates.get(digest) ?? 1) - 1;
        if (n > 0) this.#imageCreates.set(digest, n);
        else this.#imageCreates.delete(digest);
      },
    };
  }

  /** resolveImage with this daemon's roots. */
  image(nameOrPath: string, field: string, options: { trusted: boolean }): Promise<ResolvedImage> {
    return resolveSandboxImage(this.ctx.opts, nameOrPath, field, options);
  }

  /**
   * Fails fast when the kernel's embedded config (CONFIG_IKCONFIG) shows the guest could not reach the
   * agent (drivers as modules, no initramfs): otherwise that is a boot timeout much later. Kernels whose
   * config cannot be read pass; so does every kernel when readiness does not wait for the agent.
   */
  private async requireGuestKernel(kernel: ResolvedImage): Promise<void> {
    if (this.ctx.opts.agent.readiness !== "agent") return;
    const missing = await this.#kernelCheck.missing(kernel);
    if (!missing?.length) return;
    throw new FailedPreconditionError(
      `kernel ${kernel.path} cannot boot a sandbox: options not built in: ${missing.join("; ")}`,
      {
        hint: 'use a kernel built by guest/kernel/build.sh (or with those options =y), or set [agent] readiness = "vmm"',
      },
    );
  }

  /**
   * Fails fast when the rootfs has no program at the init path (`init=` in the boot args, else
   * /sbin/init): the kernel would panic or start something else, and Create would wait out the boot
   * timeout. Images debugfs cannot read pass, as when readiness does not wait for the agent.
   */
  private async requireAgentInit(rootfs: ResolvedImage, bootArgs: string): Promise<void> {
    if (this.ctx.opts.agent.readiness !== "agent") return;
    const init = /(?:^|\s)init=(\S+)/.exec(bootArgs)?.[1] ?? "/sbin/init";
    const found = await this.#initCheck.find(rootfs, init);
    if (found === undefined || found.ok) return;
    throw new FailedPreconditionError(
      `rootfs ${rootfs.path} cannot boot a sandbox: ${found.why} (the guest agent must be init)`,
      {
        hint: "build the rootfs with guest/rootfs/build-rootfs.sh, or install vmm-agent as /sbin/init in it",
      },
    );
  }

  private requireNetwork(network: NetworkMode, message: string): void {
    if (network === "tap" && this.ctx.opts.network.mode !== "tap") {
      throw new FailedPreconditionError(message, {
        hint: 'set [network] mode = "tap" in the daemon config, or create with network mode "none"',
      });
    }
  }

  /**
   * Takes the id, a network slot (mode tap) and a directory, then adds the
   * sandbox to the registry (record written, `created` published, TTL armed).
   * Each resource's undo is registered right after it is taken: on failure
   * they are given back in reverse order, with the admission reservation; on
   * success the sandbox owns them.
   */
  private async register(
    id: string,
    network: NetworkMode,
    reservation: Reservation | undefined,
    egress: ResolvedEgressPolicy | undefined,
    spec: () => SandboxSpec,
    networkPolicy?: NetworkPolicy,
  ): Promise<Sandbox> {
    const { registry, opts } = this.ctx;
    await using undo = new AsyncDisposableStack();
    if (reservation) undo.use(reservation);
    // The id counts as taken until the sandbox is in the registry (always released).
    using _claim = registry.claim(id);
    let slot: NetworkSlot | undefined;
    if (network === "tap") {
      const taken = await opts.network.acquire();
      slot = taken;
      undo.defer(() => opts.network.release(taken).catch(() => {}));
      // Loaded before the VM exists: the guest never runs under the slot's default.
      if (egress && taken.mode === "tap") await opts.network.applyEgressPolicy(taken, egress);
    }
    const dir = await SandboxDir.create(opts.dataDir, id);
    undo.defer(async () => {
      await dir.remove().catch(() => {});
    });
    const s = new Sandbox(spec(), { dir, slot, networkPolicy, log: this.ctx.log });
    registry.add(s, {
      created_from: s.spec.createdFrom,
      ...(s.spec.snapshotId !== undefined && { snapshot_id: s.spec.snapshotId }),
      ...(s.tap && { ip_address: s.tap.hostIp }),
    });
    undo.move(); // the sandbox owns slot and directory now; its removal frees them
    reservation?.registered();
    if (!s.spec.hidden) opts.onCreate?.(s.id);
    this.deps.lifecycle.armTtl(s);
    return s;
  }

  /** Boot in the background: clone the disk, start Firecracker, wait for readiness. */
  private async boot(s: Sandbox, called: number): Promise<void> {
    const { agent, runtime, cloner } = this.ctx.opts;
    using deadline = deadlineAfter(agent.bootTimeoutMs);
    const signal = AbortSignal.any([s.lifetime.signal, deadline.signal]);
    const started = performance.now();
    try {
      // Start early, await late: the disk clone runs while Firecracker starts.
      const rootfsReady = cloner.clone(s.spec.rootfs, s.dir.absolute.rootfs, signal);
      rootfsReady.catch(() => {}); // awaited by MicroVm.boot; this only marks it handled
      const net = s.tap;
      const vm = await MicroVm.boot(
        runtime,
        {
          dir: s.dir,
          kernelPath: s.spec.kernel,
          bootArgs: this.kernelCmdline(s, net),
          vcpus: s.spec.vcpus,
          memoryMib: s.spec.memoryMib,
          net,
          vsockCid: this.allocateCid(),
          rootfsReady,
        },
        signal,
      ).catch(async (err: unknown) => {
        await rootfsReady.catch(() => {}); // never leave a copy writing into a dir being removed
        throw err;
      });
      await this.deps.lifecycle.attach(s, vm);
      this.ctx.tasks.track(this.ctx.registry.persist(s)); // the record gains the pid
      await this.connectAgent(s, signal, { wait: true });
      if (s.phase.kind !== "starting") return; // stopped or failed meanwhile
      s.markReady();
      await this.ctx.registry.transition(
        s,
        { kind: "ready" },
        {
          boot_ms: String(Math.round(performance.now() - started)),
          rootfs_clone: cloneKind(await rootfsReady),
        },
      );
      this.reportOutcome(s, "boot", true, called);
      void cloner.prepare(s.spec.rootfs);
      const workload = s.spec.workload;
      if (workload) this.ctx.tasks.track(this.deps.workloads.runInitial(s, workload));
    } catch (err) {
      if (s.phase.kind !== "starting") return;
      const reason = deadline.signal.aborted
        ? `boot timed out after ${agent.bootTimeoutMs} ms (agent.boot_timeout_ms): ${errorText(err)}`
        : `boot failed: ${errorText(err)}`;
      this.reportOutcome(s, "boot", false, called);
      await this.deps.lifecycle.fail(s, reason, {}, err);
    }
  }

  /** The golden path of Create: restore, then give the clone its own identity through the agent. */
  private async bootFromGolden(s: Sandbox, snap: UsableSnapshot, called: number): Promise<void> {
    const started = performance.now();
    this.deps.golden()?.used(snap.id);
    try {
      const clone = await this.loadSnapshot(s, snap);
      let identity = "none";
      if (s.agent) {
        const result = await s.agent.setIdentity(
          { hostname: s.id, seed: randomBytes(64), timeMs: Date.now() },
          s.lifetime.signal,
        );
        identity = result.simulated ? "simulated" : "applied";
      }
      if (s.phase.kind !== "starting") return;
      s.markReady();
      await this.ctx.registry.transition(
        s,
        { kind: "ready" },
        {
          boot_ms: String(Math.round(performance.now() - started)),
          rootfs_clone: cloneKind(clone),
          created_from: "golden",
          identity,
        },
      );
      this.reportOutcome(s, "golden", true, called);
      void this.ctx.opts.cloner.prepare(snap.paths.rootfs);
      const workload = s.spec.workload;
      if (workload) this.ctx.tasks.track(this.deps.workloads.runInitial(s, workload));
    } catch (err) {
      if (s.phase.kind !== "starting") return;
      this.reportOutcome(s, "golden", false, called);
      await this.deps.lifecycle.fail(
        s,
        `restore from golden snapshot ${snap.id} failed: ${errorText(err)}`,
        {},
        err,
      );
    }
  }

  /** Tells the outcome observers (metrics) how a user sandbox's Create/Restore ended. */
  private reportOutcome(s: Sandbox, path: CreatePath, ok: boolean, called: number): void {
    if (s.spec.hidden) return;
    this.deps.outcomes.report({
      sandboxId: s.id,
      path,
      ok,
      durationMs: performance.now() - called,
    });
  }

  /** Restores `snap` into `s`'s directory; resolves with how the rootfs was cloned. */
  private async loadSnapshot(s: Sandbox, snap: UsableSnapshot): Promise<CloneResult> {
    const { agent, runtime, cloner } = this.ctx.opts;
    using deadline = deadlineAfter(agent.bootTimeoutMs);
    const signal = AbortSignal.any([s.lifetime.signal, deadline.signal]);
    // The memory file backs the clone for its whole life: link it (never a full copy).
    // The files are prepared while Firecracker starts; `snapshot/load` opens them.
    const files = Promise.all([
      cloner.clone(snap.paths.rootfs, s.dir.absolute.rootfs, signal),
      linkOrClone(snap.paths.vmstate, s.dir.absolute.vmstate),
      linkOrClone(snap.paths.mem, s.dir.absolute.mem),
    ]);
    files.catch(() => {}); // awaited by MicroVm.restore; this only marks it handled
    const net = s.tap;
    const rel = s.dir.relative;
    const vm = await MicroVm.restore(
      runtime,
      {
        dir: s.dir,
        net,
        filesReady: files,
        load: {
          snapshot_path: rel.vmstate,
          mem_backend: { backend_type: "File", backend_path: rel.mem },
          resume_vm: true,
          ...(net &&
            snap.meta.guestNetwork && {
              network_overrides: [{ iface_id: "eth0", host_dev_name: net.tapName }],
            }),
        },
        loadTimeoutMs: Math.max(runtime.apiTimeoutMs, 120_000),
      },
      signal,
    );
    await this.deps.lifecycle.attach(s, vm);
    this.ctx.tasks.track(this.ctx.registry.persist(s));
    // vsock connections are reset by a restore: every agent call opens a new one.
    await this.connectAgent(s, signal, { wait: true });
    const [clone] = await files;
    return clone;
  }

  /** Gives `s` its agent client (readiness "agent"), waiting for the agent to answer if asked. */
  async connectAgent(s: Sandbox, signal: AbortSignal, options: { wait: boolean }): Promise<void> {
    const { agent } = this.ctx.opts;
    if (agent.readiness !== "agent") return;
    const client = new AgentClient({
      endpoint: { kind: "vsock", udsPath: s.dir.absolute.vsockSocket, port: agent.port },
      requestTimeoutMs: agent.callTimeoutMs,
      spareConnection: true,
    });
    s.setAgent(client);
    if (options.wait) await client.waitReady({ timeoutMs: agent.bootTimeoutMs, signal });
  }

  private kernelCmdline(s: Sandbox, net: TapSlot | undefined): string {
    const parts = [s.spec.bootArgs];
    if (net) parts.push(net.kernelIpArg());
    parts.push(`vmm.agent_port=${this.ctx.opts.agent.port}`, `vmm.hostname=${s.id}`);
    return parts.join(" ");
  }

  private allocateCid(): number {
    // Guest CIDs only need to be unique per host vsock device; each VM has its own UDS.
    const cid = this.#nextCid;
    this.#nextCid = this.#nextCid >= 0xfffffff0 ? 3 : this.#nextCid + 1;
    return cid;
  }
}

/**
 * The initial workload of a sandbox from an image: the request's, filled in
 * with the image's defaults; the image's Entrypoint + Cmd when the request
 * gave no cmd; none when neither has a command.
 */
function imageWorkload(
  requested: ProcessSpec | undefined,
  defaults: ImageProcessDefaults,
): ProcessSpec | undefined {
  const merged = withImageDefaults(
    requested ?? { cmd: [], env: {}, tty: false, timeoutSeconds: 0 },
    defaults,
  );
  if (merged.cmd.length === 0) {
    if (requested === undefined) return undefined;
    throw new InvalidArgumentError("cmd", "must not be empty (the image has no Entrypoint or Cmd)");
  }
  validateProcessSpec(merged);
  return merged;
}

/** The `rootfs_clone` event attribute: how the sandbox's writable disk was made. */
function cloneKind(r: CloneResult): string {
  return r.spare ? "spare" : r.method;
}

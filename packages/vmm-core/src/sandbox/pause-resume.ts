import { stat, unlink } from "node:fs/promises";
import { FailedPreconditionError } from "../errors.js";
import { deadlineAfter, setLongTimeout } from "../internal/index.js";
import { MicroVm } from "../vm/microvm.js";
import type { Admission } from "./admission.js";
import { errorText, type SandboxContext } from "./context.js";
import type { SandboxLifecycle } from "./lifecycle.js";
import type { Sandbox } from "./sandbox.js";
import type { SandboxFactory } from "./sandbox-factory.js";
import type { SandboxView } from "./types.js";

/**
 * Pause and Resume (docs/pause-resume.md). Pause writes the VM's memory and
 * device state next to the sandbox's own disk (`paused.mem`,
 * `paused.vmstate`), ends its Firecracker process and keeps everything else:
 * id, labels, network namespace and address. Resume starts a new Firecracker
 * in the same directory from those files. Auto-pause pauses a sandbox left
 * `ready` for its `autoPauseSeconds`.
 */
export class PauseResume {
  constructor(
    private readonly ctx: SandboxContext,
    private readonly deps: {
      readonly admission: Admission;
      readonly lifecycle: SandboxLifecycle;
      readonly factory: () => SandboxFactory;
    },
  ) {}

  async pauseById(id: string): Promise<SandboxView> {
    const s = this.ctx.registry.get(id);
    await this.pause(s, {});
    return this.ctx.views.sandbox(s);
  }

  async resumeById(id: string): Promise<SandboxView> {
    const s = this.ctx.registry.get(id);
    await this.resume(s);
    return this.ctx.views.sandbox(s);
  }

  /** `ready` → `paused`; a paused sandbox stays paused (idempotent). */
  async pause(s: Sandbox, attrs: Record<string, string>): Promise<void> {
    const p = s.phase;
    switch (p.kind) {
      case "paused":
        return;
      case "pausing":
        return p.done;
      case "resuming":
        await p.done;
        return this.pause(s, attrs);
      case "running":
        throw new FailedPreconditionError(
          `sandbox ${s.id} is running a workload; Pause needs state ready`,
          { hint: "wait for the workload to finish (or end the Exec session), then pause" },
        );
      case "checkpointing":
        throw new FailedPreconditionError(
          `sandbox ${s.id} is being checkpointed; retry Pause when it is done`,
        );
      case "ready":
        break;
      default:
        throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; Pause needs state ready`);
    }
    const vm = s.vm;
    if (!vm) throw new FailedPreconditionError(`sandbox ${s.id} has no running microVM`);
    const { opts, registry } = this.ctx;
    // The memory file (the largest part) and a small vmstate count against the disk budget.
    using _disk = this.deps.admission.reserveDisk(s.spec.memoryMib * 2 ** 20);
    const { promise: done, resolve } = Promise.withResolvers<void>();
    s.enter({ kind: "pausing", done });
    s.setIdleTimer(undefined);
    const started = performance.now();
    try {
      const abs = s.dir.absolute;
      // Never write through a name that may be a link to another file (a snapshot's).
      await Promise.all([unlinkIfPresent(abs.pausedVmstate), unlinkIfPresent(abs.pausedMem)]);
      await vm.pauseToDisk(
        { vmstate: s.dir.relative.pausedVmstate, mem: s.dir.relative.pausedMem },
        { timeoutMs: Math.max(opts.runtime.apiTimeoutMs, 120_000) },
      );
      // The state is on disk: the process and its memory can go.
      s.setAgent(undefined);
      s.takeVm();
      await vm.dispose((err) => s.log.warn({ err }, "firecracker cleanup failed"));
      const [vmstate, mem] = await Promise.all([stat(abs.pausedVmstate), stat(abs.pausedMem)]);
      s.setPausedBytes(vmstate.size + mem.size);
      await registry.transition(
        s,
        { kind: "paused", at: new Date() },
        {
          ...attrs,
          pause_ms: String(Math.round(performance.now() - started)),
          bytes_written: String(vmstate.size + mem.size),
        },
      );
    } catch (err) {
      if (s.phase.kind === "pausing") {
        s.enter({ kind: "ready" });
        // Refused with the VM still running: it was resumed and stays ready.
        if (vm.hasExited || s.vm !== vm) {
          await this.deps.lifecycle.fail(s, `pause failed: ${errorText(err)}`, {}, err);
        } else this.watchIdle(s);
      }
      throw err;
    } finally {
      resolve();
    }
  }

  /** `paused` → `ready`, once the agent answers; a live sandbox stays as it is (idempotent). */
  async resume(s: Sandbox): Promise<void> {
    const p = s.phase;
    switch (p.kind) {
      case "ready":
      case "running":
      case "checkpointing":
        return;
      case "resuming":
        return p.done;
      case "pausing":
        await p.done;
        return this.resume(s);
      case "paused":
        break;
      default:
        throw new FailedPreconditionError(
          `sandbox ${s.id} is ${s.state}; Resume needs state paused`,
        );
    }
    const { opts, registry } = this.ctx;
    const spec = s.spec;
    using reservation = this.deps.admission.reserveResume({
      vcpus: spec.vcpus,
      memoryMib: spec.memoryMib,
    });
    const { promise: done, resolve } = Promise.withResolvers<void>();
    s.enter({ kind: "resuming", at: p.at, done });
    const started = performance.now();
    try {
      using deadline = deadlineAfter(opts.agent.bootTimeoutMs);
      const signal = AbortSignal.any([s.lifetime.signal, deadline.signal]);
      const net = s.tap;
      const rel = s.dir.relative;
      const vm = await MicroVm.restore(
        opts.runtime,
        {
          dir: s.dir,
          net,
          filesReady: Promise.resolve(),
          load: {
            snapshot_path: rel.pausedVmstate,
            mem_backend: { backend_type: "File", backend_path: rel.pausedMem },
            resume_vm: true,
            ...(net && { network_overrides: [{ iface_id: "eth0", host_dev_name: net.tapName }] }),
          },
          loadTimeoutMs: Math.max(opts.runtime.apiTimeoutMs, 120_000),
        },
        signal,
      );
      await this.deps.lifecycle.attach(s, vm);
      this.ctx.tasks.track(registry.persist(s)); // the record gains the new pid
      // vsock connections are reset by a restore: every agent call opens a new one.
      await this.deps.factory().connectAgent(s, signal, { wait: true });
      await registry.transition(
        s,
        { kind: "ready" },
        { resume_ms: String(Math.round(performance.now() - started)) },
        "resumed",
      );
      reservation.registered(); // counted by the registry from now on
    } catch (err) {
      if (s.phase.kind === "resuming") {
        // The files are intact: the sandbox stays paused and Resume can be retried.
        s.setAgent(undefined);
        await s.takeVm()?.dispose((e) => s.log.warn({ err: e }, "firecracker cleanup failed"));
        s.enter({ kind: "paused", at: p.at });
        s.log.warn({ err }, "resume failed; the sandbox stays paused");
      }
      throw err;
    } finally {
      resolve();
    }
  }

  /**
   * Arms the auto-pause timer of a sandbox that is `ready` (and clears it
   * otherwise). Called after every transition.
   */
  watchIdle(s: Sandbox): void {
    const seconds = s.spec.autoPauseSeconds;
    if (seconds <= 0 || s.phase.kind !== "ready" || this.ctx.closing()) {
      s.setIdleTimer(undefined);
      return;
    }
    s.setIdleTimer(
      setLongTimeout(() => {
        // A file call in flight is activity, as a workload is (SandboxFiles re-arms at its end).
        if (s.phase.kind === "checkpointing" || s.fileCalls > 0) return this.watchIdle(s);
        if (s.phase.kind !== "ready") return;
        s.log.info({ autoPauseSeconds: seconds }, "idle: pausing");
        this.ctx.tasks.track(
          this.pause(s, { reason: "idle" }).catch((err: unknown) =>
            s.log.warn({ err }, "auto-pause failed"),
          ),
        );
      }, seconds * 1000),
    );
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

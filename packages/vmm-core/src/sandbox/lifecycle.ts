import { rm } from "node:fs/promises";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { moveAside, setLongTimeout } from "../internal/index.js";
import type { MicroVm } from "../vm/microvm.js";
import { exitAttributes, type SandboxContext } from "./context.js";
import { closeExposedPorts } from "./port-exposures.js";
import { isLive, type Sandbox } from "./sandbox.js";

/** Longest graceful-stop wait a client may ask for (Stop.timeout_seconds). */
export const MAX_STOP_TIMEOUT_SECONDS = 3600;

/**
 * How sandboxes end: Stop (graceful, then killed), failure (boot error,
 * Firecracker dying underneath), Remove, the TTL, and the exit watch that
 * notices a microVM gone. Releasing a sandbox's VM and network slot happens
 * here and only here.
 */
export class SandboxLifecycle {
  constructor(private readonly ctx: SandboxContext) {}

  /** Holds `vm` for `s` and watches its exit; refuses it (disposing it) if `s` was ended meanwhile. */
  async attach(s: Sandbox, vm: MicroVm): Promise<void> {
    if (!isLive(s.phase) && s.phase.kind !== "resuming") {
      // A Stop or failure came while the VM was being made: nothing may keep it.
      await vm.dispose((err) => s.log.warn({ err }, "firecracker cleanup failed"));
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}`);
    }
    s.attachVm(vm);
    this.watchExit(s, vm);
  }

  /** Turns an unexpected Firecracker exit into `failed` (a Stop or failure expects it). */
  private watchExit(s: Sandbox, vm: MicroVm): void {
    // Not a tracked task: a VM kept running at shutdown (on_shutdown = "keep") never exits
    // before close() returns. The failure it causes is tracked.
    void vm.exited.then((exit) => {
      if (!isLive(s.phase) || s.vm !== vm || this.ctx.closing()) return;
      // A re-adopted VM is not our child: its exit status is unknown (both null).
      const how = exit.signal
        ? `killed by ${exit.signal}`
        : exit.code !== null
          ? `exited with code ${exit.code}`
          : "exited";
      s.log.warn({ exit }, "firecracker died underneath");
      this.ctx.tasks.track(this.fail(s, `firecracker ${how} unexpectedly`, exitAttributes(exit)));
    });
  }

  /**
   * Moves a live sandbox to `failed` with `reason` and releases the VM and
   * the network slot. Clients (the `error` field, the event) get `reason` as
   * `Views.clientText`; the log gets it whole, with `cause`. No-op once the
   * sandbox is stopping or ending.
   */
  async fail(
    s: Sandbox,
    reason: string,
    attrs: Record<string, string> = {},
    cause?: unknown,
  ): Promise<void> {
    const p = s.phase;
    if (!isLive(p)) return;
    const error = this.ctx.views.clientText(reason);
    if (error !== reason || cause !== undefined) s.log.warn({ err: cause, reason }, "failing");
    s.enter({ kind: "failing", from: s.state as "starting" | "ready" | "running", error });
    s.setIdleTimer(undefined);
    s.lifetime.abort();
    await this.release(s);
    await this.ctx.registry.transition(s, { kind: "failed", error }, { error, ...attrs });
  }

  /** Kills the VM (if any), waits for it, removes its sockets, gives back the slot. Idempotent. */
  async release(s: Sandbox): Promise<void> {
    s.setAgent(undefined);
    await closeExposedPorts(s);
    const vm = s.takeVm();
    if (vm) await vm.dispose((err) => s.log.warn({ err }, "firecracker cleanup failed"));
    const slot = s.takeSlot();
    if (slot?.mode === "tap") {
      await this.ctx.opts.network
        .release(slot)
        .catch((err: unknown) => s.log.error({ err }, "releasing the network slot failed"));
    }
  }

  /** Graceful stop (Ctrl-Alt-Del), then SIGKILL after `timeoutSeconds`. Idempotent. */
  async stopById(id: string, timeoutSeconds: number): Promise<void> {
    if (
      !Number.isInteger(timeoutSeconds) ||
      timeoutSeconds < 0 ||
      timeoutSeconds > MAX_STOP_TIMEOUT_SECONDS
    ) {
      throw new InvalidArgumentError(
        "timeout_seconds",
        `must be from 0 to ${MAX_STOP_TIMEOUT_SECONDS}, got ${timeoutSeconds}`,
      );
    }
    await this.stop(this.ctx.registry.get(id), timeoutSeconds * 1000);
  }

  /** Stops `s` (a second call joins the first); resolves at once unless it is live or stopping. */
  stop(s: Sandbox, graceMs: number): Promise<void> {
    const p = s.phase;
    if (p.kind === "stopping") return p.done;
    // A Pause or Resume under way finishes first; then the sandbox is stopped from where it is.
    if (p.kind === "pausing" || p.kind === "resuming")
      return p.done.then(() => this.stop(s, graceMs));
    if (!isLive(p) && p.kind !== "paused") return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.stopping(s, graceMs, promise).then(resolve, reject);
    return promise;
  }

  private async stopping(s: Sandbox, graceMs: number, done: Promise<void>): Promise<void> {
    s.setIdleTimer(undefined);
    await this.ctx.registry.transition(
      s,
      { kind: "stopping", done },
      { timeout_seconds: String(graceMs / 1000) },
    );
    s.lifetime.abort();
    let exitAttrs: Record<string, string> = {};
    const vm = s.vm;
    if (vm) {
      let exited = false;
      if (graceMs > 0) {
        try {
          await vm.requestShutdown({ timeoutMs: Math.min(graceMs, 5000) });
          const t = setLongTimeout(() => vm.kill(), graceMs);
          const exit = await vm.exited;
          t.clear();
          exited = true;
          exitAttrs = exitAttributes(exit);
        } catch (err) {
          s.log.debug({ err }, "graceful stop not possible; killing");
        }
      }
      if (!exited) {
        vm.kill();
        exitAttrs = exitAttributes(await vm.exited);
      }
    }
    await this.release(s);
    if (s.phase.kind === "stopping") {
      await this.ctx.registry.transition(s, { kind: "stopped" }, exitAttrs);
    }
  }

  /** Stops if needed, releases everything and deletes the sandbox. */
  remove(
    id: string,
    options: { force: boolean },
    attrs: Record<string, string> = {},
  ): Promise<void> {
    const { registry } = this.ctx;
    const s = registry.get(id);
    const running = registry.removal(id);
    if (running) return running;
    if (s.phase.kind === "running" && !options.force) {
      throw new FailedPreconditionError(`sandbox ${id} is running a workload`, {
        hint: "wait for it to finish, or remove with force",
      });
    }
    return registry.remove(s, attrs, async (recordWritten) => {
      s.setTtlTimer(undefined);
      s.setIdleTimer(undefined);
      await this.stop(s, options.force ? 0 : 10_000);
      await this.release(s);
      await recordWritten;
      // Gone for every scanner once renamed; the content is freed in the background
      // (a crash meanwhile leaves a `.deleting` dir that the next start removes).
      const aside = await moveAside(s.dir.path);
      if (aside) this.ctx.tasks.track(rm(aside, { recursive: true, force: true }));
    });
  }

  /** Removes `s` when its TTL runs out (any uint32 of seconds, counted from its creation). */
  armTtl(s: Sandbox): void {
    const { ttlSeconds, createdAt } = s.spec;
    if (ttlSeconds <= 0) return;
    const due = createdAt.getTime() + ttlSeconds * 1000 - Date.now();
    s.setTtlTimer(
      setLongTimeout(() => {
        s.log.info({ ttlSeconds }, "ttl expired: removing");
        this.ctx.tasks.track(
          this.remove(s.id, { force: true }, { reason: "ttl" }).catch((err: unknown) => {
            if (!(err instanceof NotFoundError)) s.log.error({ err }, "ttl removal failed");
          }),
        );
      }, due),
    );
  }
}

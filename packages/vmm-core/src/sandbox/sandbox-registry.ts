import { NotFoundError } from "../errors.js";
import type { Logger } from "../internal/index.js";
import { CoalescedWrite } from "./coalesced-write.js";
import { EventBus } from "./event-bus.js";
import type { Sandbox, SandboxPhase } from "./sandbox.js";
import { recordOf } from "./sandbox-record.js";
import type { EventAction, SandboxEvent } from "./types.js";

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

/**
 * The sandboxes of this daemon: the map, their wire-state transitions, their
 * records on disk and their events.
 *
 * Invariants:
 * - every wire-state change goes through {@link transition}, which checks the
 *   state machine, writes the record, then publishes the event: a client told
 *   about a state can count on a restarted daemon reading the same state;
 * - an id is taken from {@link claim} until the sandbox is added (a second
 *   Create of the id waits for the first), then by the map;
 * - an entry leaves the map only at the end of its {@link remove}, after
 *   its directory is gone; `removed` is its last event.
 */
export class SandboxRegistry {
  readonly #sandboxes = new Map<string, Sandbox>();
  readonly #claims = new Map<string, Promise<void>>();
  readonly #removals = new Map<string, Promise<void>>();
  readonly #writes = new Map<string, CoalescedWrite>();
  readonly #bus = new EventBus();
  /** Called after every wire-state change (the auto-pause timer watches them). */
  onTransition: (s: Sandbox) => void = () => {};

  constructor(private readonly log: Logger) {}

  /** The sandbox `id`; NotFoundError when there is none. */
  get(id: string): Sandbox {
    const s = this.#sandboxes.get(id);
    if (!s) throw new NotFoundError("sandbox", id);
    return s;
  }

  find(id: string): Sandbox | undefined {
    return this.#sandboxes.get(id);
  }

  /** True when `id` is registered or claimed by a Create/Restore in progress. */
  taken(id: string): boolean {
    return this.#sandboxes.has(id) || this.#claims.has(id);
  }

  /** Resolves when the Create/Restore holding `id` has added it or given up (at once if none). */
  async claimSettled(id: string): Promise<void> {
    await this.#claims.get(id);
  }

  all(): IterableIterator<Sandbox> {
    return this.#sandboxes.values();
  }

  /** Holds `id` for a Create/Restore until disposed (after `add`, or on failure). */
  claim(id: string): Disposable {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#claims.set(id, promise);
    return {
      [Symbol.dispose]: () => {
        if (this.#claims.get(id) === promise) this.#claims.delete(id);
        resolve();
      },
    };
  }

  /**
   * Adds a new sandbox: in the map at once, its first record written in the
   * background (`persisted` settles when it is on disk), `created` published.
   */
  add(s: Sandbox, createdAttrs: Record<string, string>): { persisted: Promise<void> } {
    this.#sandboxes.set(s.id, s);
    const persisted = this.persist(s);
    this.publish(s, "created", createdAttrs);
    return { persisted };
  }

  /** Re-registers a sandbox read back from disk at startup, without an event. */
  readd(s: Sandbox): void {
    this.#sandboxes.set(s.id, s);
  }

  /**
   * The one place wire states change: checks the state machine, writes the
   * record, then publishes the event (named after the new state unless
   * `action`).
   */
  async transition(
    s: Sandbox,
    next: SandboxPhase,
    attrs: Record<string, string>,
    action?: EventAction,
  ): Promise<void> {
    const from = s.state;
    s.enter(next, { wireChange: true });
    const to = s.state;
    // ready ⇄ running churns with every command and means nothing to a restarted
    // daemon (both are "VM alive"): only lifecycle changes are written.
    const churn = (from === "ready" && to === "running") || (from === "running" && to === "ready");
    // The record says it before any client is told or shown it (Inspect, List): a daemon
    // killed right after a `ready` event used to come back with the record still `starting`
    // and fail the sandbox.
    if (!churn) {
      const write = s.holdShownState(from);
      try {
        await this.persist(s);
      } finally {
        s.releaseShownState(write);
      }
    }
    this.publish(s, action ?? (to as EventAction), attrs);
    this.onTransition(s);
  }

  /** Publishes an event that is not a state change (checkpointed, restored). */
  publish(s: Sandbox, action: EventAction, attributes: Record<string, string>): void {
    if (!s.spec.hidden) {
      this.#bus.publish({ sandboxId: s.id, action, timestampNs: nowNs(), attributes });
    }
    // running/idle come with every Run and Exec (the rpc log line already has the call):
    // logged at debug so a busy sandbox does not pay two log writes per command.
    if (action === "running" || action === "idle") {
      s.log.debug({ action, ...attributes }, "sandbox event");
    } else s.log.info({ action, ...attributes }, "sandbox event");
  }

  events(
    filter: { id?: string; action?: EventAction },
    signal: AbortSignal,
  ): AsyncIterable<SandboxEvent> {
    return this.#bus.subscribe(filter, signal);
  }

  /**
   * Writes the sandbox's record (atomically) as it is now. Writes of one
   * sandbox are serialized and coalesced, so the file always ends with the
   * latest state. Resolves when the latest state is on disk. Nothing is
   * written once its removal began: the record goes with the directory.
   */
  persist(s: Sandbox): Promise<void> {
    if (this.#removals.has(s.id)) return Promise.resolve();
    let w = this.#writes.get(s.id);
    if (!w) {
      w = new CoalescedWrite(() => this.writeRecord(s));
      this.#writes.set(s.id, w);
    }
    return w.request();
  }

  /** The removal of `id` under way, if any. */
  removal(id: string): Promise<void> | undefined {
    return this.#removals.get(id);
  }

  /**
   * Removes `s`: runs `teardown` (stop, release, delete the directory) once;
   * a second call joins the first. The entry leaves the map and `removed` is
   * published only when `teardown` resolved.
   */
  remove(
    s: Sandbox,
    attrs: Record<string, string>,
    teardown: (recordWritten: Promise<void>) => Promise<void>,
  ): Promise<void> {
    const running = this.#removals.get(s.id);
    if (running) return running;
    const written = this.#writes.get(s.id)?.idle() ?? Promise.resolve();
    // Registered before the teardown starts, so every step already sees the removal.
    const removal = Promise.resolve()
      .then(() => teardown(written))
      .then(() => {
        this.#sandboxes.delete(s.id);
        this.#writes.delete(s.id);
        this.publish(s, "removed", attrs);
      })
      .finally(() => {
        if (this.#removals.get(s.id) === removal) this.#removals.delete(s.id);
      });
    this.#removals.set(s.id, removal);
    return removal;
  }

  private async writeRecord(s: Sandbox): Promise<void> {
    try {
      await s.dir.writeRecord(recordOf(s));
    } catch (err) {
      // The directory is gone only while the sandbox is being removed.
      if (!this.#removals.has(s.id)) s.log.error({ err }, "writing the sandbox record failed");
    }
  }
}

import type { EventAction, SandboxEvent } from "./types.js";

/** Options of `EventBus`. */
export interface EventBusOptions {
  /** Events buffered per subscriber before the oldest are dropped. Default 1024. */
  readonly bufferSize?: number;
}

interface Subscriber {
  readonly filter: { id?: string; action?: EventAction };
  readonly queue: SandboxEvent[];
  dropped: number;
  wake: (() => void) | undefined;
}

/**
 * Fans lifecycle events out to subscribers. Publishing never blocks and never
 * grows without bound: each subscriber has a bounded queue; when it is full the
 * oldest event is dropped and the next delivered event carries
 * `dropped=<count>` so the client knows it missed some.
 */
export class EventBus {
  private readonly subscribers = new Set<Subscriber>();
  private readonly bufferSize: number;

  constructor(options: EventBusOptions = {}) {
    this.bufferSize = options.bufferSize ?? 1024;
  }

  publish(event: SandboxEvent): void {
    for (const s of this.subscribers) {
      if (s.filter.id !== undefined && s.filter.id !== event.sandboxId) continue;
      if (s.filter.action !== undefined && s.filter.action !== event.action) continue;
      if (s.queue.length >= this.bufferSize) {
        s.queue.shift();
        s.dropped++;
      }
      s.queue.push(event);
      s.wake?.();
    }
  }

  /** Live events matching `filter` until `signal` aborts. */
  async *subscribe(
    filter: { id?: string; action?: EventAction },
    signal: AbortSignal,
  ): AsyncGenerator<SandboxEvent> {
    const sub: Subscriber = { filter, queue: [], dropped: 0, wake: undefined };
    this.subscribers.add(sub);
    const onAbort = () => sub.wake?.();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const next = sub.queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => {
            sub.wake = resolve;
          });
          sub.wake = undefined;
          continue;
        }
        if (sub.dropped > 0) {
          const dropped = sub.dropped;
          sub.dropped = 0;
          yield { ...next, attributes: { ...next.attributes, dropped: String(dropped) } };
        } else {
          yield next;
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.subscribers.delete(sub);
    }
  }

  /** Subscribers registered now (a cancelled subscription leaves at once). */
  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

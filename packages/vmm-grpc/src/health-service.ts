import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { healthV1 } from "@vmm/proto";

const { HealthCheckResponse_ServingStatus: Status } = healthV1;
type ServingStatus = healthV1.HealthCheckResponse_ServingStatus;

/**
 * Serving status of the daemon as grpc.health.v1 reports it: every
 * registered service name (and "" for the whole server) is SERVING until
 * `setNotServing()` is called at shutdown. Watchers are told of the change.
 */
export class HealthStatus {
  private serving = true;
  private readonly services: ReadonlySet<string>;
  private readonly watchers = new Set<() => void>();

  constructor(services: Iterable<string>) {
    this.services = new Set(["", ...services]);
  }

  /** The status of `service`, or undefined when the service is unknown. */
  statusOf(service: string): ServingStatus | undefined {
    if (!this.services.has(service)) return undefined;
    return this.serving ? Status.SERVING : Status.NOT_SERVING;
  }

  /** All services and their status. */
  all(): Map<string, ServingStatus> {
    return new Map([...this.services].map((s) => [s, this.statusOf(s) ?? Status.UNKNOWN]));
  }

  /** Marks every service NOT_SERVING (shutdown has begun). */
  setNotServing(): void {
    if (!this.serving) return;
    this.serving = false;
    for (const notify of this.watchers) notify();
  }

  /** Calls `notify` on every change until `signal` aborts. */
  watch(notify: () => void, signal: AbortSignal): void {
    this.watchers.add(notify);
    signal.addEventListener("abort", () => this.watchers.delete(notify), { once: true });
  }
}

/** Registers grpc.health.v1.Health backed by `health`. */
export function registerHealthService(router: ConnectRouter, health: HealthStatus): void {
  router.service(healthV1.Health, {
    check(req) {
      const status = health.statusOf(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      }
      return { status };
    },
    list() {
      const statuses: Record<string, healthV1.HealthCheckResponse> = {};
      for (const [name, status] of health.all()) {
        statuses[name] = create(healthV1.HealthCheckResponseSchema, { status });
      }
      return { statuses };
    },
    async *watch(req, ctx: HandlerContext) {
      let changed: () => void = () => {};
      health.watch(() => changed(), ctx.signal);
      for (;;) {
        yield { status: health.statusOf(req.service) ?? Status.SERVICE_UNKNOWN };
        await new Promise<void>((resolve) => {
          changed = resolve;
          ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        if (ctx.signal.aborted) return;
      }
    },
  });
}

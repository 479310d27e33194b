import type * as net from "node:net";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnimplementedError,
} from "../errors.js";
import { openTcpForwarder, type TcpForwarder } from "../network/tcp-forwarder.js";
import { errorText, type SandboxContext } from "./context.js";
import type { Sandbox } from "./sandbox.js";

/** One exposed guest port: the host address that forwards to it. */
export interface ExposedPort {
  readonly guestPort: number;
  /** `ip:port` on the daemon's host. */
  readonly hostAddress: string;
  /** The listener; absent while a restarted daemon has not reopened it. */
  readonly forwarder?: TcpForwarder;
}

/** What an exposure answers. */
export interface PortExposure {
  readonly hostAddress: string;
}

/** Forgets the exposures of `s` and closes their listeners (its slot is being released). */
export async function closeExposedPorts(s: Sandbox): Promise<void> {
  await Promise.all(s.takePorts().map((p) => p.forwarder?.close()));
}

/**
 * ExposePort: a TCP forwarder per (sandbox, guest port), listening on the
 * daemon's host (`[ports] listen_host`, ephemeral port) and dialling the
 * sandbox IP, which the slot namespace DNATs to the guest. Exposures live
 * as long as the sandbox's network slot: closed when it is released (Stop,
 * failure, Remove), kept across Pause (a connection then resumes the sandbox
 * when `lifecycle.auto_resume` is on), persisted in the record and reopened,
 * on the same address if it is free, by a restarted daemon.
 */
export class PortExposures {
  /** Exposures being opened, so two concurrent calls for one port share one listener. */
  readonly #opening = new Map<string, Promise<PortExposure>>();

  constructor(
    private readonly ctx: SandboxContext,
    private readonly deps: {
      /** Resumes a paused sandbox. */
      readonly resume: (s: Sandbox) => Promise<void>;
    },
  ) {}

  async expose(id: string, guestPort: number, protocol: string): Promise<PortExposure> {
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535)
      throw new InvalidArgumentError("guest_port", `must be from 1 to 65535, got ${guestPort}`);
    const proto = protocol === "" ? "tcp" : protocol;
    if (proto === "udp")
      throw new UnimplementedError("ExposePort forwards TCP only; udp is not supported");
    if (proto !== "tcp")
      throw new InvalidArgumentError(
        "protocol",
        `must be "tcp" (the default), got ${JSON.stringify(proto.slice(0, 64))}`,
      );
    const s = this.ctx.registry.get(id);
    const listen = this.listenHost();
    this.usable(s);
    const known = s.ports.get(guestPort);
    if (known?.forwarder) return { hostAddress: known.hostAddress };
    const key = `${s.id}:${guestPort}`;
    let opening = this.#opening.get(key);
    if (!opening) {
      opening = this.open(s, guestPort, listen, known?.hostAddress).finally(() =>
        this.#opening.delete(key),
      );
      this.#opening.set(key, opening);
    }
    return opening;
  }

  /**
   * Connects to an exposed guest port the way its forwarder does (a paused
   * sandbox is resumed first when `lifecycle.auto_resume` is on), for an
   * in-process relay: the HTTP proxy. The socket is cut when the exposure
   * closes (Stop, failure, Remove). Only ports exposed with ExposePort are
   * reachable. Throws NotFoundError (no such sandbox, or the port is not
   * exposed), FailedPreconditionError (stopped, or paused with auto_resume
   * off), or the dial's error (ECONNREFUSED: nothing listens in the guest).
   */
  async connect(id: string, guestPort: number): Promise<net.Socket> {
    const s = this.ctx.registry.get(id);
    const exposed = s.ports.get(guestPort);
    if (!exposed?.forwarder) {
      if (!s.tap)
        throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}: it has no network now`);
      throw new NotFoundError("exposed port", `${guestPort} of sandbox ${s.id}`);
    }
    return exposed.forwarder.connect();
  }

  /** Reopens the exposures a restarted daemon read from the record (same address when free). */
  async reopen(s: Sandbox): Promise<void> {
    const recorded = [...s.ports.values()].filter((p) => !p.forwarder);
    if (recorded.length === 0) return;
    if (!s.tap || "unavailable" in (this.ctx.opts.ports ?? {})) {
      s.takePorts();
      return;
    }
    const listen = this.listenHost();
    for (const p of recorded) {
      try {
        await this.open(s, p.guestPort, listen, p.hostAddress);
      } catch (err) {
        s.log.warn({ err, guestPort: p.guestPort }, "exposed port not reopened");
      }
    }
  }

  /**
   * Before a forwarded connection is dialled: waits for a Pause/Resume under
   * way and resumes a paused sandbox when `lifecycle.auto_resume` is on (the
   * connection is refused otherwise).
   */
  private async awake(s: Sandbox): Promise<void> {
    for (;;) {
      const p = s.phase;
      if (p.kind === "pausing" || p.kind === "resuming") await p.done;
      else if (p.kind !== "paused") return;
      else if (this.ctx.opts.lifecycle?.autoResume ?? true) await this.deps.resume(s);
      else throw new FailedPreconditionError(`sandbox ${s.id} is paused (auto_resume is off)`);
    }
  }

  private listenHost(): string {
    const ports = this.ctx.opts.ports ?? { listenHost: "127.0.0.1" };
    if ("unavailable" in ports) throw new FailedPreconditionError(ports.unavailable);
    return ports.listenHost;
  }

  /** Ports need the sandbox's network: mode tap, slot held (not stopped, failed or removed). */
  private usable(s: Sandbox): void {
    if (s.spec.network !== "tap")
      throw new FailedPreconditionError(`sandbox ${s.id} has network mode none: it has no ports`, {
        hint: 'create it with network mode "tap"',
      });
    if (!s.tap)
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}: it has no network now`);
  }

  private async open(
    s: Sandbox,
    guestPort: number,
    host: string,
    previous: string | undefined,
  ): Promise<PortExposure> {
    const tap = s.tap;
    if (!tap)
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}: it has no network now`);
    const options = {
      host,
      targetHost: tap.hostIp,
      targetPort: guestPort,
      beforeConnect: () => this.awake(s),
      logger: s.log,
    };
    const samePort = previous === undefined ? undefined : Number(previous.split(":").at(-1));
    let forwarder: TcpForwarder | undefined;
    if (samePort !== undefined) {
      forwarder = await openTcpForwarder({ ...options, port: samePort }).catch((err: unknown) => {
        s.log.warn({ err, previous }, `exposed port moves: ${errorText(err)}`);
        return undefined;
      });
    }
    forwarder ??= await openTcpForwarder({ ...options, port: 0 });
    if (s.tap !== tap) {
      await forwarder.close(); // released while listening
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}: it has no network now`);
    }
    s.setPort({ guestPort, hostAddress: forwarder.address, forwarder });
    await this.ctx.registry.persist(s);
    return { hostAddress: forwarder.address };
  }
}

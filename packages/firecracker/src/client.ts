import { Agent, request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import type {
  ApiErrorBody,
  Balloon,
  BalloonStats,
  BalloonUpdate,
  BootSource,
  Drive,
  EntropyDevice,
  FirecrackerVersion,
  FullVmConfiguration,
  InstanceActionInfo,
  InstanceInfo,
  Logger,
  MachineConfiguration,
  Metrics,
  MmdsConfig,
  MmdsContents,
  NetworkInterface,
  PartialDrive,
  PartialNetworkInterface,
  SnapshotCreateParams,
  SnapshotLoadParams,
  Vm,
  Vsock,
} from "./api-types.js";
import { FirecrackerApiError, FirecrackerConnectionError } from "./errors.js";

/** Options of {@link createFirecrackerClient}. */
export interface FirecrackerClientOptions {
  /** Absolute (or cwd-relative) path of the API socket. Required. */
  socketPath: string;
  /**
   * Default per-call timeout in milliseconds, covering the wait behind earlier calls of this client
   * and the request itself. Default 60000: snapshot create/load of big guests blocks the API for
   * seconds (NOTES.md §0).
   */
  timeoutMs?: number;
  /**
   * How long the kept-alive connection may stay unused before it is closed, in ms. Default 1000:
   * a VM's calls come in bursts (boot, a checkpoint, a stop) and an idle sandbox should hold no
   * socket in the daemon; a call after that connects again (a Unix socket connect, well under 1 ms).
   */
  idleConnectionTimeoutMs?: number;
}

/** Per-call options of every {@link FirecrackerClient} method. */
export interface CallOptions {
  /** Aborts the call (and rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
}

/**
 * Typed client of one Firecracker process's API (v1.14.2), one method per OpenAPI operationId.
 * Calls are serialized (one connection, kept alive): Firecracker accepts only ~10 connections and
 * processes requests one at a time anyway. Every method rejects with {@link FirecrackerApiError}
 * on a non-2xx answer and {@link FirecrackerConnectionError} when the socket cannot be used.
 */
export interface FirecrackerClient {
  readonly socketPath: string;
  /** `GET /` */
  describeInstance(options?: CallOptions): Promise<InstanceInfo>;
  /** `GET /version` */
  getFirecrackerVersion(options?: CallOptions): Promise<FirecrackerVersion>;
  /** `GET /vm/config` */
  getExportVmConfig(options?: CallOptions): Promise<FullVmConfiguration>;
  /** `GET /machine-config` */
  getMachineConfiguration(options?: CallOptions): Promise<MachineConfiguration>;
  /** `PUT /machine-config` (pre-boot; omitted optionals are reset). */
  putMachineConfiguration(body: MachineConfiguration, options?: CallOptions): Promise<void>;
  /** `PATCH /machine-config` (pre-boot). */
  patchMachineConfiguration(
    body: Partial<MachineConfiguration>,
    options?: CallOptions,
  ): Promise<void>;
  /** `PUT /boot-source` (pre-boot). */
  putGuestBootSource(body: BootSource, options?: CallOptions): Promise<void>;
  /** `PUT /drives/{drive_id}` with `drive_id` taken from the body (pre-boot). */
  putGuestDriveByID(body: Drive, options?: CallOptions): Promise<void>;
  /** `PATCH /drives/{drive_id}` (post-boot). */
  patchGuestDriveByID(body: PartialDrive, options?: CallOptions): Promise<void>;
  /** `PUT /network-interfaces/{iface_id}` (pre-boot). */
  putGuestNetworkInterfaceByID(body: NetworkInterface, options?: CallOptions): Promise<void>;
  /** `PATCH /network-interfaces/{iface_id}` (post-boot). */
  patchGuestNetworkInterfaceByID(
    body: PartialNetworkInterface,
    options?: CallOptions,
  ): Promise<void>;
  /** `PUT /vsock` (pre-boot; Firecracker binds `uds_path` now). */
  putGuestVsock(body: Vsock, options?: CallOptions): Promise<void>;
  /** `PUT /mmds` (replaces the store). */
  putMmds(body: MmdsContents, options?: CallOptions): Promise<void>;
  /** `PATCH /mmds` (JSON merge patch). */
  patchMmds(body: MmdsContents, options?: CallOptions): Promise<void>;
  /** `GET /mmds` */
  getMmds(options?: CallOptions): Promise<MmdsContents>;
  /** `PUT /mmds/config` (pre-boot). */
  putMmdsConfig(body: MmdsConfig, options?: CallOptions): Promise<void>;
  /** `PUT /logger` (pre-boot or before load). */
  putLogger(body: Logger, options?: CallOptions): Promise<void>;
  /** `PUT /metrics` (once per process). */
  putMetrics(body: Metrics, options?: CallOptions): Promise<void>;
  /** `PUT /actions` */
  createSyncAction(body: InstanceActionInfo, options?: CallOptions): Promise<void>;
  /** `PATCH /vm` (pause / resume; idempotent). */
  patchVm(body: Vm, options?: CallOptions): Promise<void>;
  /** `PUT /snapshot/create` (VM paused). */
  createSnapshot(body: SnapshotCreateParams, options?: CallOptions): Promise<void>;
  /** `PUT /snapshot/load` (fresh process only). */
  loadSnapshot(body: SnapshotLoadParams, options?: CallOptions): Promise<void>;
  /** `PUT /balloon` (pre-boot). */
  putBalloon(body: Balloon, options?: CallOptions): Promise<void>;
  /** `PATCH /balloon` (post-boot). */
  patchBalloon(body: BalloonUpdate, options?: CallOptions): Promise<void>;
  /** `GET /balloon` */
  describeBalloonConfig(options?: CallOptions): Promise<Balloon>;
  /** `GET /balloon/statistics` */
  describeBalloonStats(options?: CallOptions): Promise<BalloonStats>;
  /** `PUT /entropy` (pre-boot). */
  putEntropyDevice(body: EntropyDevice, options?: CallOptions): Promise<void>;
  /** Closes the kept-alive connection. Calls made afterwards open a new one. */
  close(): void;
}

const defaultTimeoutMs = 60_000;
const defaultIdleConnectionTimeoutMs = 1000;

/**
 * Creates a {@link FirecrackerClient} for the API socket at `socketPath`. Nothing is connected
 * until the first call.
 *
 * @example
 * const fc = createFirecrackerClient({ socketPath: "/var/lib/vmm/sandboxes/a/api.sock" });
 * await fc.putMachineConfiguration({ vcpu_count: 1, mem_size_mib: 128 });
 */
export function createFirecrackerClient(options: FirecrackerClientOptions): FirecrackerClient {
  return new HttpFirecrackerClient(options);
}

/** Sockets whose close already drops an idle {@link HttpFirecrackerClient}'s agent. */
const watchedSockets = new WeakSet<Socket>();

/**
 * The client over `node:http`. A class (methods on the prototype, not ~30 closures per
 * instance): the daemon holds one per VM for the VM's whole life. Its HTTP agent exists only
 * while a connection does: created by the first call, dropped once its connection closed idle.
 */
class HttpFirecrackerClient implements FirecrackerClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly idleConnectionTimeoutMs: number;
  private agent: Agent | undefined;
  /** Settles when the last queued call is over (calls are serialized). */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;

  constructor(options: FirecrackerClientOptions) {
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.idleConnectionTimeoutMs =
      options.idleConnectionTimeoutMs ?? defaultIdleConnectionTimeoutMs;
  }

  describeInstance(o?: CallOptions) {
    return this.get<InstanceInfo>("describeInstance", "/", o);
  }
  getFirecrackerVersion(o?: CallOptions) {
    return this.get<FirecrackerVersion>("getFirecrackerVersion", "/version", o);
  }
  getExportVmConfig(o?: CallOptions) {
    return this.get<FullVmConfiguration>("getExportVmConfig", "/vm/config", o);
  }
  getMachineConfiguration(o?: CallOptions) {
    return this.get<MachineConfiguration>("getMachineConfiguration", "/machine-config", o);
  }
  putMachineConfiguration(b: MachineConfiguration, o?: CallOptions) {
    return this.send("putMachineConfiguration", "PUT", "/machine-config", b, o);
  }
  patchMachineConfiguration(b: Partial<MachineConfiguration>, o?: CallOptions) {
    return this.send("patchMachineConfiguration", "PATCH", "/machine-config", b, o);
  }
  putGuestBootSource(b: BootSource, o?: CallOptions) {
    return this.send("putGuestBootSource", "PUT", "/boot-source", b, o);
  }
  putGuestDriveByID(b: Drive, o?: CallOptions) {
    return this.send("putGuestDriveByID", "PUT", `/drives/${pathId(b.drive_id)}`, b, o);
  }
  patchGuestDriveByID(b: PartialDrive, o?: CallOptions) {
    return this.send("patchGuestDriveByID", "PATCH", `/drives/${pathId(b.drive_id)}`, b, o);
  }
  putGuestNetworkInterfaceByID(b: NetworkInterface, o?: CallOptions) {
    const path = `/network-interfaces/${pathId(b.iface_id)}`;
    return this.send("putGuestNetworkInterfaceByID", "PUT", path, b, o);
  }
  patchGuestNetworkInterfaceByID(b: PartialNetworkInterface, o?: CallOptions) {
    const path = `/network-interfaces/${pathId(b.iface_id)}`;
    return this.send("patchGuestNetworkInterfaceByID", "PATCH", path, b, o);
  }
  putGuestVsock(b: Vsock, o?: CallOptions) {
    return this.send("putGuestVsock", "PUT", "/vsock", b, o);
  }
  putMmds(b: MmdsContents, o?: CallOptions) {
    return this.send("putMmds", "PUT", "/mmds", b, o);
  }
  patchMmds(b: MmdsContents, o?: CallOptions) {
    return this.send("patchMmds", "PATCH", "/mmds", b, o);
  }
  getMmds(o?: CallOptions) {
    return this.get<MmdsContents>("getMmds", "/mmds", o);
  }
  putMmdsConfig(b: MmdsConfig, o?: CallOptions) {
    return this.send("putMmdsConfig", "PUT", "/mmds/config", b, o);
  }
  putLogger(b: Logger, o?: CallOptions) {
    return this.send("putLogger", "PUT", "/logger", b, o);
  }
  putMetrics(b: Metrics, o?: CallOptions) {
    return this.send("putMetrics", "PUT", "/metrics", b, o);
  }
  createSyncAction(b: InstanceActionInfo, o?: CallOptions) {
    return this.send("createSyncAction", "PUT", "/actions", b, o);
  }
  patchVm(b: Vm, o?: CallOptions) {
    return this.send("patchVm", "PATCH", "/vm", b, o);
  }
  createSnapshot(b: SnapshotCreateParams, o?: CallOptions) {
    return this.send("createSnapshot", "PUT", "/snapshot/create", b, o);
  }
  loadSnapshot(b: SnapshotLoadParams, o?: CallOptions) {
    return this.send("loadSnapshot", "PUT", "/snapshot/load", b, o);
  }
  putBalloon(b: Balloon, o?: CallOptions) {
    return this.send("putBalloon", "PUT", "/balloon", b, o);
  }
  patchBalloon(b: BalloonUpdate, o?: CallOptions) {
    return this.send("patchBalloon", "PATCH", "/balloon", b, o);
  }
  describeBalloonConfig(o?: CallOptions) {
    return this.get<Balloon>("describeBalloonConfig", "/balloon", o);
  }
  describeBalloonStats(o?: CallOptions) {
    return this.get<BalloonStats>("describeBalloonStats", "/balloon/statistics", o);
  }
  putEntropyDevice(b: EntropyDevice, o?: CallOptions) {
    return this.send("putEntropyDevice", "PUT", "/entropy", b, o);
  }

  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private get<T>(operation: string, path: string, o: CallOptions | undefined): Promise<T> {
    return this.call(operation, "GET", path, undefined, o) as Promise<T>;
  }

  private async send(
    operation: string,
    method: "PUT" | "PATCH",
    path: string,
    body: unknown,
    o: CallOptions | undefined,
  ): Promise<void> {
    await this.call(operation, method, path, body, o);
  }

  /**
   * One socket: calls are serialized, so a second one would only idle. `timeout` closes it once
   * it sat in the free list that long (Node destroys a free socket on its timeout); on a socket
   * in use it only emits an event nobody acts on: calls have their own deadline.
   */
  private agentForCall(): Agent {
    this.agent ??= new Agent({
      keepAlive: true,
      maxSockets: 1,
      maxFreeSockets: 1,
      timeout: this.idleConnectionTimeoutMs,
    });
    return this.agent;
  }

  /** Drops the agent once `socket` closed while no call needs it (an idle VM holds none). */
  private watchSocket(agent: Agent, socket: Socket): void {
    if (watchedSockets.has(socket)) return;
    watchedSockets.add(socket);
    socket.once("close", () => {
      const idle =
        this.inFlight === 0 &&
        Object.keys(agent.sockets).length === 0 &&
        Object.keys(agent.freeSockets).length === 0;
      if (idle && this.agent === agent) this.agent = undefined;
    });
  }

  private async call(
    operation: string,
    method: "GET" | "PUT" | "PATCH",
    path: string,
    body: unknown,
    callOptions: CallOptions | undefined,
  ): Promise<unknown> {
    const { socketPath } = this;
    const timeoutMs = callOptions?.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callOptions?.signal ? AbortSignal.any([callOptions.signal, timeout]) : timeout;
    const translate = (err: unknown): Error => {
      if (callOptions?.signal?.aborted) return toError(callOptions.signal.reason);
      if (timeout.aborted) {
        return new FirecrackerConnectionError(
          operation,
          socketPath,
          `no answer to ${method} ${path} within ${timeoutMs} ms`,
          { cause: err },
        );
      }
      if (err instanceof FirecrackerApiError || err instanceof FirecrackerConnectionError) {
        return err;
      }
      const e = toError(err);
      return new FirecrackerConnectionError(operation, socketPath, e.message, { cause: e });
    };

    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const previous = this.tail;
    this.tail = previous.then(() => mine);
    this.inFlight++;
    try {
      await raceAbort(previous, signal);
      return await this.request(operation, method, path, body, signal);
    } catch (err) {
      throw translate(err);
    } finally {
      this.inFlight--;
      release();
    }
  }

  private request(
    operation: string,
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      signal.throwIfAborted();
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string | number> = { Accept: "application/json" };
      if (payload) {
        headers["Content-Type"] = "application/json";
        // Firecracker reads bodies strictly by Content-Length; chunked is not decoded (NOTES.md §0).
        headers["Content-Length"] = payload.length;
      }
      const agent = this.agentForCall();
      const req = httpRequest({ socketPath: this.socketPath, agent, method, path, headers });
      req.on("socket", (socket: Socket) => this.watchSocket(agent, socket));
      const onAbort = () => req.destroy(toError(signal.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      const done = () => signal.removeEventListener("abort", onAbort);
      req.on("error", (err) => {
        done();
        reject(err);
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => {
          done();
          reject(err);
        });
        res.on("end", () => {
          done();
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(text.length > 0 ? parseJson(text) : undefined);
            return;
          }
          reject(
            new FirecrackerApiError({
              operation,
              method,
              path,
              status,
              faultMessage: faultMessageOf(text),
            }),
          );
        });
      });
      req.end(payload);
    });
  }
}

/** Ids are `[A-Za-z0-9_]` for Firecracker; encoding keeps anything else from breaking the path. */
function pathId(id: string): string {
  return encodeURIComponent(id);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** API faults carry `fault_message`, HTTP-parser faults `error` (NOTES.md §0); else the raw body. */
function faultMessageOf(text: string): string {
  const parsed = parseJson(text);
  if (parsed && typeof parsed === "object") {
    const b = parsed as ApiErrorBody;
    if (typeof b.fault_message === "string") return b.fault_message;
    if (typeof b.error === "string") return b.error;
  }
  return text.trim() || "(empty body)";
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function raceAbort(p: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(toError(signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(toError(signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

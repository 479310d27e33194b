import { join } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  createVmmRoutes,
  type ExposedPortUrl,
  type FilesApi,
  type HealthStatus,
  type ImageApi,
  type ListenerKind,
  listenerKey,
  type RedactedPath,
  requestResetKey,
  type SandboxApi,
  type SnapshotApi,
} from "@vmm/grpc";
import * as pb from "@vmm/proto";
import { healthV1, reflectionV1, reflectionV1alpha } from "@vmm/proto";
import type { Logger } from "pino";
import { createCallGate } from "./call-gate.js";
import type { Config } from "./config/schema.js";
import type { ConnectionLimits } from "./connection-limits.js";
import { createHostChecker } from "./host-check.js";
import type { HttpMount } from "./http/http-mount.js";
import type { MetricsSource } from "./http/metrics-source.js";
import { API_PREFIX, listenOps } from "./http/ops-listener.js";
import { createVmmMetrics, type VmmMetrics } from "./http/vmm-metrics.js";
import { type Listener, listenTcp, listenUnix, type UniversalHandler } from "./listeners.js";
import { REQUEST_COMPRESSIONS } from "./request-compression.js";
import { resolveGroup } from "./socket-group.js";
import { VERSION } from "./version.js";

/** Options of `startDaemon`. */
export interface DaemonOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly sandboxes: SandboxApi;
  readonly snapshots?: SnapshotApi;
  /** File calls; absent without a sandbox backend (UNIMPLEMENTED). */
  readonly files?: FilesApi;
  /** What /metrics reads about sandboxes and pools; absent = those metrics stay empty. */
  readonly metricsSource?: MetricsSource;
  /**
   * Parts of the ops HTTP listener (`[http] listen`) after its own routes,
   * offered each authenticated request and upgrade in order (the web console
   * at /ui/). Ignored when the listener is off.
   */
  readonly httpMounts?: readonly HttpMount[];
  /** ExposePortResponse.url (the HTTP proxy, `[proxy]`); absent = empty. */
  readonly exposedPortUrl?: ExposedPortUrl;
  /** The image store; absent = ImageService answers UNIMPLEMENTED. */
  readonly images?: ImageApi;
}

/** A serving daemon. */
export interface Daemon {
  readonly listeners: readonly Listener[];
  readonly health: HealthStatus;
  /**
   * Graceful stop: health turns NOT_SERVING, listeners stop accepting,
   * in-flight calls get `graceMs` to finish, then they are cancelled and
   * remaining connections dropped.
   */
  stop(graceMs: number): Promise<void>;
}

/** Starts the gRPC/Connect listeners over the given sandbox backend. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, logger } = options;
  const tcpToken = config.grpc.auth_token === "" ? undefined : config.grpc.auth_token;
  const shutdown = new AbortController();
  const { routes, interceptors, health } = createVmmRoutes({
    sandboxes: options.sandboxes,
    ...(options.snapshots && { snapshots: options.snapshots }),
    ...(options.files && { files: options.files }),
    ...(options.images && { images: options.images }),
    logger,
    version: VERSION,
    ...(tcpToken !== undefined && { tcpToken }),
    ...(!config.grpc.expose_host_details && { redactPaths: hostPaths(config) }),
    listPaging: {
      pageSize: config.grpc.list_page_size,
      maxMessageBytes: config.grpc.max_message_bytes,
    },
    checkHost: createHostChecker(config),
    ...(options.exposedPortUrl && { exposedPortUrl: options.exposedPortUrl }),
  });
  const metrics: VmmMetrics | undefined =
    config.http.listen === ""
      ? undefined
      : createVmmMetrics(options.metricsSource ?? EMPTY_METRICS_SOURCE);
  // Outermost: the metrics see every call with the code its client sees.
  if (metrics) interceptors.unshift(metrics.rpcInterceptor);
  const g = config.grpc;
  const gate = createCallGate({
    ...(tcpToken !== undefined && { tcpToken }),
    eventsPath: `/${pb.SandboxService.typeName}/${pb.SandboxService.method.events.name}`,
    maxEventStreams: g.max_event_streams,
    maxEventStreamsPerConnection: g.max_event_streams_per_connection,
    clientStreamingPaths: clientStreamingPaths(),
    requestTimeoutMs: g.request_timeout_ms,
  });
  const limits: ConnectionLimits = {
    maxConnections: g.max_connections,
    idleTimeoutMs: g.idle_timeout_ms,
    requestTimeoutMs: g.request_timeout_ms,
    maxConcurrentStreams: g.max_concurrent_streams,
    streamWindowBytes: g.http2_stream_window_bytes,
    connectionWindowBytes: g.http2_connection_window_bytes,
    maxFrameBytes: g.http2_max_frame_bytes,
  };
  const onConnectionRefused = refusalLogger(logger, g.max_connections);
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const handlerFor = (kind: ListenerKind, requestPathPrefix = ""): UniversalHandler => {
    const adapter = connectNodeAdapter({
      routes,
      interceptors,
      requestPathPrefix,
      readMaxBytes: config.grpc.max_message_bytes,
      acceptCompression: [...REQUEST_COMPRESSIONS],
      shutdownSignal: shutdown.signal,
      contextValues: (req) =>
        createContextValues()
          .set(listenerKey, kind)
          .set(requestResetKey, () => requestWasReset(req)),
    });
    return (req, res) => {
      if (gate(req, res, kind, requestPathPrefix) === "rejected") return;
      inFlight++;
      res.once("close", () => {
        inFlight--;
        if (inFlight === 0) idle?.();
      });
      adapter(req as never, res as never);
    };
  };

  const listeners: Listener[] = [];
  try {
    listeners.push(
      await listenUnix(handlerFor("unix"), {
        path: g.unix_socket,
        mode: Number.parseInt(g.socket_mode, 8),
        ...(g.socket_group !== "" && { gid: socketGid(g.socket_group) }),
        limits,
        onConnectionRefused,
      }),
    );
    if (config.grpc.tcp_addr !== "") {
      listeners.push(
        await listenTcp(handlerFor("tcp"), {
          address: g.tcp_addr,
          ...(g.tls_cert !== "" && {
            tls: {
              certFile: g.tls_cert,
              keyFile: g.tls_key,
              ...(g.tls_client_ca !== "" && { clientCaFile: g.tls_client_ca }),
            },
          }),
          limits,
          onConnectionRefused,
        }),
      );
    }
    if (config.http.listen !== "" && metrics) {
      const api = handlerFor("http", API_PREFIX);
      listeners.push(
        await listenOps({
          address: config.http.listen,
          ...(config.http.auth_token !== "" && { token: config.http.auth_token }),
          scrape: () => metrics.scrape(),
          notReady: () =>
            health.statusOf("") === healthV1.HealthCheckResponse_ServingStatus.SERVING
              ? undefined
              : "the daemon is shutting down",
          api: (req, res) => api(req, res),
          ...(options.httpMounts && { mounts: options.httpMounts }),
          limits,
          logger: logger.child({ component: "ops-http" }),
        }),
      );
    }
  } catch (err) {
    metrics?.close();
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  logger.info({ listeners: listeners.map((l) => l.address), version: VERSION }, "serving");

  return {
    listeners,
    health,
    async stop(graceMs) {
      health.setNotServing();
      const closed = Promise.all(listeners.map((l) => l.close()));
      if (inFlight > 0) {
        logger.info({ inFlight, graceMs }, "draining in-flight calls");
        const drained = new Promise<void>((resolve) => {
          idle = resolve;
        });
        const timer = new Promise<"timeout">((resolve) =>
          setTimeout(() => resolve("timeout"), graceMs).unref(),
        );
        if ((await Promise.race([drained, timer])) === "timeout") {
          logger.warn({ inFlight }, "drain deadline passed: cancelling the remaining calls");
        }
      }
      shutdown.abort();
      for (const l of listeners) l.destroy();
      await closed;
      metrics?.close();
    },
  };
}

/** Metrics source of a daemon without a sandbox backend: no sandboxes, empty pools. */
const EMPTY_METRICS_SOURCE: MetricsSource = {
  sandboxes: () => [],
  pools: () => ({
    network: { ready: 0, inUse: 0, target: 0, max: 0 },
    spareClones: 0,
    goldenSnapshots: 0,
  }),
  observeCreates: () => () => {},
};

/** The daemon's directories, as clients see them in error messages (grpc.expose_host_details off). */
function hostPaths(config: Config): RedactedPath[] {
  const dataDir = config.firecracker.data_dir;
  return [
    { path: dataDir, placeholder: "<data_dir>" },
    {
      path: config.storage.images_dir !== "" ? config.storage.images_dir : join(dataDir, "images"),
      placeholder: "<images_dir>",
    },
    { path: config["firecracker.jailer"].chroot_base_dir, placeholder: "<chroot_base_dir>" },
  ];
}

/**
 * True once the client reset the call's HTTP/2 stream (RST_STREAM, e.g. a
 * cancel): Node marks the stream closed and records the code before the
 * request body's end reaches the handler (a client's own end of its request
 * leaves the stream open). HTTP/1.1 has no client streams.
 */
function requestWasReset(req: object): boolean {
  if (!("stream" in req)) return false;
  const stream = req.stream as { closed?: boolean; rstCode?: number };
  // rstCode reads NO_ERROR (0) until a reset sets it.
  return stream.closed === true || (stream.rstCode ?? 0) !== 0;
}

/** Request paths of every client- or bidi-streaming method the daemon serves. */
function clientStreamingPaths(): ReadonlySet<string> {
  const paths = new Set<string>();
  for (const service of [
    pb.SandboxService,
    pb.SandboxSnapshotService,
    pb.SandboxFilesService,
    pb.ImageService,
    healthV1.Health,
    reflectionV1.ServerReflection,
    reflectionV1alpha.ServerReflection,
  ]) {
    for (const m of service.methods) {
      if (m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming") {
        paths.add(`/${service.typeName}/${m.name}`);
      }
    }
  }
  return paths;
}

function socketGid(group: string): number {
  const gid = resolveGroup(group);
  // validateConfig checked it already; a group removed since is still worth a clear message.
  if (gid === undefined)
    throw new Error(`grpc.socket_group ${JSON.stringify(group)} is not a known group`);
  return gid;
}

/** Logs refused connections at most once every 10 s, with how many since the last line. */
function refusalLogger(logger: Logger, cap: number): () => void {
  let refused = 0;
  let last = 0;
  return () => {
    refused++;
    const now = Date.now();
    if (now - last < 10_000) return;
    logger.warn(
      { refused, maxConnections: cap },
      "connection limit reached: closing new connections (grpc.max_connections)",
    );
    refused = 0;
    last = now;
  };
}

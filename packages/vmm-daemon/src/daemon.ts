import { join } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  createVmmRoutes,
  type HealthStatus,
  listenerKey,
  type RedactedPath,
  type SandboxApi,
  type SnapshotApi,
} from "@vmm/grpc";
import type { Logger } from "pino";
import type { Config } from "./config/schema.js";
import { type Listener, listenTcp, listenUnix, type UniversalHandler } from "./listeners.js";
import { VERSION } from "./version.js";

/** Options of `startDaemon`. */
export interface DaemonOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly sandboxes: SandboxApi;
  readonly snapshots?: SnapshotApi;
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
    logger,
    version: VERSION,
    ...(tcpToken !== undefined && { tcpToken }),
    ...(!config.grpc.expose_host_details && { redactPaths: hostPaths(config) }),
    listPaging: {
      pageSize: config.grpc.list_page_size,
      maxMessageBytes: config.grpc.max_message_bytes,
    },
  });
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const handlerFor = (kind: "unix" | "tcp"): UniversalHandler => {
    const adapter = connectNodeAdapter({
      routes,
      interceptors,
      readMaxBytes: config.grpc.max_message_bytes,
      shutdownSignal: shutdown.signal,
      contextValues: () => createContextValues().set(listenerKey, kind),
    });
    return (req, res) => {
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
        path: config.grpc.unix_socket,
        mode: Number.parseInt(config.grpc.socket_mode, 8),
      }),
    );
    if (config.grpc.tcp_addr !== "") {
      listeners.push(
        await listenTcp(handlerFor("tcp"), {
          address: config.grpc.tcp_addr,
          ...(config.grpc.tls_cert !== "" && {
            tls: { certFile: config.grpc.tls_cert, keyFile: config.grpc.tls_key },
          }),
        }),
      );
    }
  } catch (err) {
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
    },
  };
}

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

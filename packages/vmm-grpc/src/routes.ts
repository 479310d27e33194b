import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import * as pb from "@vmm/proto";
import { healthV1, reflectionV1, reflectionV1alpha } from "@vmm/proto";
import type { FilesApi } from "./files-api.js";
import { registerFilesService } from "./files-service.js";
import { HealthStatus, registerHealthService } from "./health-service.js";
import { type HostChecker, registerHostService } from "./host-service.js";
import type { ImageApi } from "./image-api.js";
import { registerImageService } from "./image-service.js";
import {
  createAuthInterceptor,
  createErrorAndLogInterceptor,
  createVersionHeaderInterceptor,
} from "./interceptors.js";
import type { ListPaging } from "./list-page.js";
import type { Logger } from "./logger.js";
import { createRedactInterceptor, type RedactedPath } from "./redact-interceptor.js";
import { ReflectionIndex, registerReflectionService } from "./reflection-service.js";
import type { SandboxApi } from "./sandbox-api.js";
import { type ExposedPortUrl, registerSandboxService } from "./sandbox-service.js";
import type { SnapshotApi } from "./snapshot-api.js";
import { registerSnapshotService } from "./snapshot-service.js";

/** Options of `createVmmRoutes`. */
export interface VmmRoutesOptions {
  readonly sandboxes: SandboxApi;
  /** Absent until snapshots are wired: the snapshot service then answers UNIMPLEMENTED. */
  readonly snapshots?: SnapshotApi;
  /** Absent without a sandbox backend: the files service then answers UNIMPLEMENTED. */
  readonly files?: FilesApi;
  readonly logger: Logger;
  /** Daemon version, sent in the `vmm-version` response header. */
  readonly version: string;
  /** Bearer token required on TCP listeners; undefined = none (TLS-only or TCP off). */
  readonly tcpToken?: string;
  /** Host directories replaced by placeholders in client-visible error messages. */
  readonly redactPaths?: readonly RedactedPath[];
  /** Page size and message budget of List and ListSnapshots; default `DEFAULT_LIST_PAGING`. */
  readonly listPaging?: ListPaging;
  /** Host checks behind HostService.CheckHost; absent = UNIMPLEMENTED. */
  readonly checkHost?: HostChecker;
  /** ExposePortResponse.url of a guest port (the daemon's HTTP proxy); absent = url stays empty. */
  readonly exposedPortUrl?: ExposedPortUrl;
  /** The image store behind ImageService; absent = UNIMPLEMENTED. */
  readonly images?: ImageApi;
}

/** Every service name the daemon serves, as reflection lists them. */
export const SERVICE_NAMES: readonly string[] = [
  pb.SandboxService.typeName,
  pb.SandboxSnapshotService.typeName,
  pb.HostService.typeName,
  pb.SandboxFilesService.typeName,
  pb.ImageService.typeName,
  healthV1.Health.typeName,
  reflectionV1.ServerReflection.typeName,
  reflectionV1alpha.ServerReflection.typeName,
];

/**
 * Builds the route registration and the interceptors for connect-node's
 * adapter, plus the HealthStatus the daemon flips at shutdown.
 */
export function createVmmRoutes(options: VmmRoutesOptions): {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  health: HealthStatus;
} {
  const health = new HealthStatus(SERVICE_NAMES);
  const reflection = new ReflectionIndex(
    [
      pb.file_sandbox_v1_sandbox,
      healthV1.file_grpc_health_v1_health,
      reflectionV1.file_grpc_reflection_v1_reflection,
      reflectionV1alpha.file_grpc_reflection_v1alpha_reflection,
    ],
    SERVICE_NAMES,
  );
  return {
    routes: (router) => {
      registerSandboxService(router, options.sandboxes, options.listPaging, options.exposedPortUrl);
      registerSnapshotService(router, options.snapshots, options.listPaging);
      registerHostService(router, options.checkHost);
      registerFilesService(router, options.files);
      registerImageService(router, options.images);
      registerHealthService(router, health);
      registerReflectionService(router, reflection);
    },
    interceptors: [
      createRedactInterceptor(options.redactPaths ?? []),
      createErrorAndLogInterceptor(options.logger.child({ component: "rpc" })),
      createAuthInterceptor(options.tcpToken),
      createVersionHeaderInterceptor(options.version),
    ],
    health,
  };
}

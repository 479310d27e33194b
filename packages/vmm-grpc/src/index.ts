// Public API of vmm-grpc: the sandbox.v1 services over vmm-core, health and reflection.
export { toConnectError } from "./error-mapping.js";
export type { FilesApi } from "./files-api.js";
export { requestResetKey } from "./files-service.js";
export { HealthStatus } from "./health-service.js";
export type { HostChecker } from "./host-service.js";
export type { ImageApi } from "./image-api.js";
export type { ListenerKind } from "./interceptors.js";
export { listenerKey } from "./interceptors.js";
export type { ListPaging } from "./list-page.js";
export { DEFAULT_LIST_PAGING } from "./list-page.js";
export type { Logger } from "./logger.js";
export type { RedactedPath } from "./redact-interceptor.js";
export type { VmmRoutesOptions } from "./routes.js";
export { createVmmRoutes, SERVICE_NAMES } from "./routes.js";
export type { SandboxApi } from "./sandbox-api.js";
export type { ExposedPortUrl } from "./sandbox-service.js";
export type { SnapshotApi } from "./snapshot-api.js";
export { createUnbuiltSandboxApi } from "./unbuilt-sandbox-api.js";

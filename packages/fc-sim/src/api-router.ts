import { type Operation, operations, resolveSchema } from "./api-spec.js";
import { BodyValidationError, deserializeErrorPrefix, validateBody } from "./body-validator.js";
import type { FcLogger } from "./fc-logger.js";
import type { Metrics } from "./metrics.js";
import type { HttpRequest, HttpResponse } from "./micro-http.js";
import { ApiError, FatalLoadError, type Vmm } from "./vmm.js";

type Obj = Record<string, unknown>;

/** Path resources whose second segment is an id, and the body field it must equal. */
const idRoutes: Record<string, string> = {
  drives: "drive_id",
  "network-interfaces": "iface_id",
  pmem: "id",
};

/** Options of {@link createApiHandler}. */
export type ApiHandlerOptions = {
  vmm: Vmm;
  logger: FcLogger;
  metrics: Metrics;
  /** Called after a failed snapshot load was answered: the process must exit 1. */
  onFatal: (message: string) => void;
};

function fault(message: string, status = 400): HttpResponse {
  return { status, body: { fault_message: message } };
}

/**
 * Firecracker's API layer: method/path routing (no 404: unknown → 400), the
 * GET-with-body / empty PUT rules, path id checks, JSON parsing and spec
 * validation, then dispatch to the {@link Vmm} action named by the operationId.
 */
export function createApiHandler(
  o: ApiHandlerOptions,
): (req: HttpRequest) => Promise<HttpResponse> {
  return async (req) => {
    const path = req.path.replace(/^\//, "");
    o.logger.log(
      "Debug",
      "fc_api",
      `The API server received a ${req.method[0]}${req.method.slice(1).toLowerCase()} request on "${req.path}".`,
    );
    const res = await route(o, req, path);
    if (res.status >= 400) {
      const msg = (res.body as { fault_message?: string } | undefined)?.fault_message ?? "";
      o.logger.log(
        "Error",
        "fc_api",
        `Received Error. Status code: ${res.status} Bad Request. Message: ${msg}`,
      );
    }
    return res;
  };
}

async function route(o: ApiHandlerOptions, req: HttpRequest, path: string): Promise<HttpResponse> {
  const group = `${req.method.toLowerCase()}_api_requests`;
  o.metrics.inc(group, "count");
  const segs = path.split("/");
  const idField = idRoutes[segs[0] ?? ""];
  const template = idField ? `${segs[0]}/{${idField === "id" ? "id" : idField}}` : path;
  const op = operations.find((x) => x.method === req.method && x.template === template);
  const optionalBody =
    req.method === "PATCH" && (path === "balloon/hinting/start" || path === "balloon/hinting/stop");
  if (req.method === "GET" && req.body) return fault("GET request cannot have a body.");
  if (req.method !== "GET" && !req.body && !optionalBody)
    return fault(`Empty ${req.method} request.`);
  if (!op) return fault(`Invalid request method and/or path: ${req.method} ${path}.`);
  let body: Obj = {};
  if (idField) {
    const id = segs[1] ?? "";
    if (id === "") return fault("The ID cannot be empty.");
    if (!/^[A-Za-z0-9_]+$/.test(id))
      return fault("API Resource IDs can only contain alphanumeric characters and underscores.");
  }
  let raw: unknown;
  if (req.body) {
    try {
      raw = JSON.parse(req.body.toString("utf8"));
    } catch (e) {
      return fault(`${deserializeErrorPrefix}${(e as Error).message}.`);
    }
    try {
      checkBody(op, raw);
    } catch (e) {
      if (e instanceof BodyValidationError) return fault(`${deserializeErrorPrefix}${e.message}.`);
      throw e;
    }
    if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) body = raw as Obj;
  }
  if (idField && body[idField] !== segs[1])
    return fault("The id from the path does not match the id from the body!");
  try {
    return await dispatch(o, op, body, raw);
  } catch (e) {
    if (e instanceof FatalLoadError) {
      setImmediate(() => o.onFatal(e.message));
      return fault(e.message, e.status);
    }
    if (e instanceof ApiError) return fault(e.message, e.status);
    return fault(`Internal VMM error: ${(e as Error).message}`);
  }
}

function checkBody(op: Operation, raw: unknown): void {
  if (op.operationId === "putMmds" || op.operationId === "patchMmds") return; // any JSON value
  if (!op.body) return;
  if (op.operationId === "putGuestVsock" && typeof raw === "object" && raw !== null) {
    delete (raw as Obj).vsock_id; // deprecated, still accepted by v1.14.2
  }
  // PATCH /machine-config shares MachineConfiguration with PUT, but every field is optional.
  validateBody(
    raw,
    op.operationId === "patchMachineConfiguration"
      ? { ...resolveSchema(op.body), required: [] }
      : op.body,
  );
  if (op.operationId === "loadSnapshot") {
    const b = raw as Obj;
    const hasBackend = b.mem_backend !== undefined && b.mem_backend !== null;
    const hasFile = b.mem_file_path !== undefined && b.mem_file_path !== null;
    if (!hasBackend && !hasFile)
      throw new BodyValidationError(
        "missing field: either `mem_backend` or `mem_file_path` is required",
      );
    if (hasBackend && hasFile)
      throw new BodyValidationError(
        "too many fields: either `mem_backend` or `mem_file_path` exclusively is required",
      );
  }
}

async function dispatch(
  o: ApiHandlerOptions,
  op: Operation,
  body: Obj,
  raw: unknown,
): Promise<HttpResponse> {
  const v = o.vmm;
  const ok = (b?: unknown): HttpResponse =>
    b === undefined ? { status: 204 } : { status: 200, body: b };
  switch (op.operationId) {
    case "describeInstance":
      return ok(v.describeInstance());
    case "getFirecrackerVersion":
      return ok({ firecracker_version: "1.14.2" });
    case "getExportVmConfig":
      return ok(v.getExportVmConfig());
    case "getMachineConfiguration":
      return ok(v.getMachineConfiguration());
    case "getMmds":
      return ok(v.getMmds());
    case "describeBalloonConfig":
      return ok(v.describeBalloonConfig());
    case "describeBalloonStats":
      return ok(v.describeBalloonStats());
    case "describeBalloonHinting":
      return ok(v.getBalloonHintingStatus());
    case "getMemoryHotplug":
      return ok(v.getMemoryHotplug());
    case "putMachineConfiguration":
      v.putMachineConfiguration(body, false);
      return ok();
    case "patchMachineConfiguration":
      v.putMachineConfiguration(body, true);
      return ok();
    case "putCpuConfiguration":
      v.putCpuConfiguration(body);
      return ok();
    case "putGuestBootSource":
      v.putGuestBootSource(body);
      return ok();
    case "putGuestDriveByID":
      v.putGuestDriveById(body);
      return ok();
    case "patchGuestDriveByID":
      v.patchGuestDriveById(body);
      return ok();
    case "putGuestPmemByID":
      v.putGuestPmemById(body);
      return ok();
    case "putGuestNetworkInterfaceByID":
      v.putGuestNetworkInterfaceById(body);
      return ok();
    case "patchGuestNetworkInterfaceByID":
      v.patchGuestNetworkInterfaceById(body);
      return ok();
    case "putGuestVsock":
      await v.putGuestVsock(body);
      return ok();
    case "putBalloon":
      v.putBalloon(body);
      return ok();
    case "patchBalloon":
      v.patchBalloon(body, "amount");
      return ok();
    case "patchBalloonStatsInterval":
      v.patchBalloon(body, "stats");
      return ok();
    case "startBalloonHinting":
      v.patchBalloon(body, "hint-start");
      return ok();
    case "stopBalloonHinting":
      v.patchBalloon(body, "hint-stop");
      return ok();
    case "putEntropyDevice":
      v.putEntropyDevice(body);
      return ok();
    case "putSerialDevice":
      v.putSerial(body);
      return ok();
    case "putLogger":
      v.putLogger(body, o.logger);
      return ok();
    case "putMetrics":
      v.putMetrics(body);
      return ok();
    case "putMmds":
      v.putMmds(raw);
      return ok();
    case "patchMmds":
      v.patchMmds(raw);
      return ok();
    case "putMmdsConfig":
      v.putMmdsConfig(body);
      return ok();
    case "putMemoryHotplug":
      v.putMemoryHotplug(body);
      return ok();
    case "patchMemoryHotplug":
      v.patchMemoryHotplug(body);
      return ok();
    case "createSyncAction": {
      const after = await v.createSyncAction(body);
      setImmediate(after);
      return ok();
    }
    case "patchVm":
      await v.patchVm(body);
      return ok();
    case "createSnapshot":
      v.createSnapshot(body);
      return ok();
    case "loadSnapshot":
      await v.loadSnapshot(body);
      return ok();
    default:
      return fault(`Invalid request method and/or path: ${op.method} ${op.template}.`);
  }
}

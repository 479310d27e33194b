import { quote } from "./internal/quote.js";

/**
 * The error kinds vmm-core reports, one per gRPC status code the daemon uses.
 * vmm-grpc maps them to codes in one place (`toConnectError`); nothing below
 * the API picks a status code itself.
 */
export type ErrorKind =
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "invalid_argument"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "cancelled"
  | "unimplemented"
  | "permission_denied"
  | "data_loss"
  | "internal";

/**
 * Base class of every error vmm-core throws on purpose. `message` is safe to
 * show a client; `hint`, when set, says what to do next; `cause` keeps the
 * underlying error for the log.
 */
export class VmmError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, message: string, options?: ErrorOptions & { hint?: string }) {
    super(message, options);
    this.name = new.target.name;
    this.kind = kind;
    this.hint = options?.hint;
  }
}

/** An argument is malformed; `field` names it (proto field path, e.g. `limits.vcpus`). */
export class InvalidArgumentError extends VmmError {
  readonly field: string;
  constructor(field: string, message: string, options?: ErrorOptions & { hint?: string }) {
    super("invalid_argument", `${field}: ${message}`, options);
    this.field = field;
  }
}

/** A sandbox, snapshot or other named resource does not exist. */
export class NotFoundError extends VmmError {
  readonly resource: string;
  readonly id: string;
  constructor(resource: string, id: string) {
    super("not_found", `${resource} ${quote(id)} not found`);
    this.resource = resource;
    this.id = id;
  }
}

/** A resource with that id exists with a different spec. */
export class AlreadyExistsError extends VmmError {
  constructor(message: string) {
    super("already_exists", message);
  }
}

/** The call is valid but not in the resource's current state. */
export class FailedPreconditionError extends VmmError {
  constructor(message: string, options?: ErrorOptions & { hint?: string }) {
    super("failed_precondition", message, options);
  }
}

/** A limit (sandboxes, vCPUs, memory, IPs, disk) ran out; the message names it. */
export class ResourceExhaustedError extends VmmError {
  constructor(message: string, options?: ErrorOptions & { hint?: string }) {
    super("resource_exhausted", message, options);
  }
}

/** A boot, command or call took longer than allowed. */
export class DeadlineExceededError extends VmmError {
  constructor(message: string, options?: ErrorOptions) {
    super("deadline_exceeded", message, options);
  }
}

/** The daemon cannot serve the call now (shutting down). */
export class UnavailableError extends VmmError {
  constructor(message: string, options?: ErrorOptions & { hint?: string }) {
    super("unavailable", message, options);
  }
}

/** A feature this daemon does not provide. */
export class UnimplementedError extends VmmError {
  constructor(message: string, options?: { hint?: string }) {
    super("unimplemented", message, options);
  }
}

/** A third party (an image registry) refused our credentials or has none for us. */
export class PermissionDeniedError extends VmmError {
  constructor(message: string, options?: ErrorOptions & { hint?: string }) {
    super("permission_denied", message, options);
  }
}

/** Data arrived corrupted (a blob whose digest does not match); nothing of it was kept. */
export class DataLossError extends VmmError {
  constructor(message: string, options?: ErrorOptions & { hint?: string }) {
    super("data_loss", message, options);
  }
}

/** Returns true for errors made by vmm-core on purpose (as opposed to bugs). */
export function isVmmError(err: unknown): err is VmmError {
  return err instanceof VmmError;
}

import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorKind, isVmmError } from "@vmm/core";

const codeByKind: Record<ErrorKind, Code> = {
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  invalid_argument: Code.InvalidArgument,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  cancelled: Code.Canceled,
  unimplemented: Code.Unimplemented,
  permission_denied: Code.PermissionDenied,
  data_loss: Code.DataLoss,
  internal: Code.Internal,
};

/**
 * Maps any error to the ConnectError a client sees: the one place that picks
 * status codes. VmmErrors keep their message (it is written for clients);
 * ConnectErrors pass through; aborts become Canceled; anything else is a bug
 * and becomes Internal with a generic message, the original kept in `cause`
 * for the log and never sent to the client.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isVmmError(err)) {
    const message = err.hint ? `${err.message} (${err.hint})` : err.message;
    return new ConnectError(message, codeByKind[err.kind], undefined, undefined, err);
  }
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) {
    return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err);
  }
  return new ConnectError(
    "internal error (logged by the daemon)",
    Code.Internal,
    undefined,
    undefined,
    err,
  );
}

/** True when a mapped error hides a bug whose cause must be logged. */
export function isInternal(err: ConnectError): boolean {
  return err.code === Code.Internal || err.code === Code.Unknown;
}

import { FirecrackerApiError, FirecrackerConnectionError } from "@vmm/firecracker";
import { FailedPreconditionError, UnavailableError } from "../errors.js";
import { sanitizeGuestText } from "../internal/guest-text.js";

/** Bound of Firecracker's `fault_message` in a client-facing message, UTF-8 bytes. */
const FAULT_MAX_BYTES = 512;

/**
 * Turns a failure of a Firecracker API call into the domain error a client
 * should see (ARCHITECTURE "vmm-core inside": Firecracker API errors become
 * domain errors with Firecracker's `fault_message`). Anything else is returned
 * unchanged (aborts stay aborts, our bugs stay bugs).
 *
 * - A 4xx answer (Firecracker's "the request is not valid in this VM state or
 *   with these files", e.g. `snapshot/create` on a running VM, a vmstate whose
 *   CRC does not match) → {@link FailedPreconditionError}
 *   `firecracker refused <operation>: <fault_message>`. The fault text is
 *   Firecracker's, echoing paths and file contents it read: bounded and
 *   stripped of control characters like guest text.
 * - Any other status (503: too many connections on the API socket) →
 *   {@link UnavailableError}: the same call may succeed later.
 * - The API socket unreachable or silent ({@link FirecrackerConnectionError}):
 *   FAILED_PRECONDITION rather than UNAVAILABLE, because retrying does not
 *   help: the microVM's process has exited (its exit watch moves the sandbox
 *   to `failed` within milliseconds) or hangs (only Stop/Remove help). The
 *   message names the sandbox and points at Inspect; the socket path (a host
 *   detail) stays in `cause`, for the log.
 *
 * The original error is always kept as `cause`.
 *
 * Messages name the call by its OpenAPI operationId (`createSnapshot`), as
 * the client's errors do.
 *
 * @param sandboxId the sandbox whose microVM was called.
 */
export function firecrackerCallError(err: unknown, sandboxId: string): unknown {
  if (err instanceof FirecrackerApiError) {
    const operation = err.operation;
    const fault = sanitizeGuestText(err.faultMessage || "(no fault message)", FAULT_MAX_BYTES);
    if (err.status >= 400 && err.status < 500) {
      return new FailedPreconditionError(`firecracker refused ${operation}: ${fault}`, {
        cause: err,
        hint: `the microVM of sandbox ${sandboxId} is not in a state or setup that allows it`,
      });
    }
    return new UnavailableError(
      `firecracker could not serve ${operation} (HTTP ${err.status}): ${fault}; retry later`,
      { cause: err },
    );
  }
  if (err instanceof FirecrackerConnectionError) {
    const operation = err.operation;
    return new FailedPreconditionError(
      `the microVM of sandbox ${sandboxId} did not answer ${operation}: its Firecracker process has exited or hangs`,
      {
        cause: err,
        hint: "Inspect the sandbox for its state; Stop or Remove it if it stays ready",
      },
    );
  }
  return err;
}

/**
 * Errors thrown by this package. They know HTTP and processes, not sandboxes: vmm-core decides what
 * a failure means for a sandbox (STYLE.md §3).
 */

/** Base class of every error this package throws; `name` is the concrete class name. */
export abstract class FirecrackerError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Firecracker answered a request with a non-2xx status. Thrown by every `FirecrackerClient` method.
 * A 400 after `InstanceStart` or a snapshot load leaves the process in an undefined state: discard it
 * (NOTES.md §3).
 */
export class FirecrackerApiError extends FirecrackerError {
  /** OpenAPI operationId, e.g. `putGuestBootSource`. */
  readonly operation: string;
  readonly method: string;
  readonly path: string;
  /** HTTP status (400 for API faults, 413 for MMDS overflow, 503 for too many connections). */
  readonly status: number;
  /** Firecracker's `fault_message` (API faults) or `error` (HTTP-parser faults), or the raw body. */
  readonly faultMessage: string;

  constructor(init: {
    operation: string;
    method: string;
    path: string;
    status: number;
    faultMessage: string;
  }) {
    super(
      `firecracker ${init.operation} (${init.method} ${init.path}) failed with ${init.status}: ${init.faultMessage}`,
    );
    this.operation = init.operation;
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.faultMessage = init.faultMessage;
  }
}

/**
 * The API socket could not be reached or the connection broke (process gone, socket removed, timeout,
 * abort). `cause` holds the underlying error; an abort keeps the signal's reason as `cause`.
 */
export class FirecrackerConnectionError extends FirecrackerError {
  readonly operation: string;
  readonly socketPath: string;

  constructor(operation: string, socketPath: string, detail: string, options?: ErrorOptions) {
    super(
      `firecracker ${operation}: cannot talk to the API socket ${socketPath}: ${detail} (is the Firecracker process still running?)`,
      options,
    );
    this.operation = operation;
    this.socketPath = socketPath;
  }
}

/**
 * A Firecracker process could not be started or did not become ready: invalid options, socket path
 * too long, stale socket owned by a live process, binary missing, early exit, start timeout.
 */
export class FirecrackerLaunchError extends FirecrackerError {
  /** Exit code or signal when the process exited during startup. */
  readonly exit?: { code: number | null; signal: string | null };
  /** Last lines the process printed (stdout + stderr), if any. */
  readonly outputTail?: string;

  constructor(
    message: string,
    options?: ErrorOptions & {
      exit?: { code: number | null; signal: string | null };
      outputTail?: string;
    },
  ) {
    super(message, options);
    if (options?.exit) this.exit = options.exit;
    if (options?.outputTail !== undefined) this.outputTail = options.outputTail;
  }
}

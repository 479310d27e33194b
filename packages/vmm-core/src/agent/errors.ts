import { type ErrorKind, VmmError } from "../errors.js";
import { AgentErrorCode } from "./protocol.js";

/**
 * The agent (or something claiming to be it) broke the protocol: bad,
 * oversized or truncated frames, out-of-range values, a session that ends
 * before its EXIT. The session is closed; other calls are unaffected.
 *
 * Kind `unavailable`, not `internal`: the guest runs untrusted code and may
 * replace the agent, so this is the sandbox's agent failing to serve the call
 * (as when it crashes), not a daemon bug. A retry opens a new session.
 */
export class AgentProtocolError extends VmmError {
  constructor(message: string, options?: ErrorOptions) {
    super("unavailable", `agent protocol error: ${message}`, {
      ...options,
      hint: "the sandbox's agent misbehaved and the session was closed; retry, or recreate the sandbox if it persists",
    });
  }
}

/**
 * Nothing answers on the agent's socket yet: the UDS is missing or refuses,
 * Firecracker closed the `CONNECT` (no guest listener on that port), or the
 * connection dropped before the agent's HELLO. Retryable while the guest boots;
 * `waitReady` retries it.
 */
export class AgentUnavailableError extends VmmError {
  /** The socket the client tried, e.g. `/var/lib/vmm/sandboxes/x/vsock.sock port 1024`. */
  readonly endpoint: string;
  constructor(endpoint: string, message: string, options?: ErrorOptions) {
    super("unavailable", `agent at ${endpoint}: ${message}`, {
      ...options,
      hint: "the guest may still be booting; retry, or check that the rootfs runs vmm-agent",
    });
    this.endpoint = endpoint;
  }
}

const kindOf: Record<number, ErrorKind> = {
  [AgentErrorCode.protocol]: "internal",
  [AgentErrorCode.unsupportedVersion]: "failed_precondition",
  [AgentErrorCode.invalidArgument]: "invalid_argument",
  [AgentErrorCode.unsupported]: "unimplemented",
  // The agent failed inside the guest (an errno it has no better code for): the sandbox
  // failed to serve the call, not the daemon (INTERNAL is for daemon bugs).
  [AgentErrorCode.internal]: "unavailable",
  [AgentErrorCode.notFound]: "not_found",
  [AgentErrorCode.failedPrecondition]: "failed_precondition",
  [AgentErrorCode.noSpace]: "resource_exhausted",
  [AgentErrorCode.exhausted]: "resource_exhausted",
  [AgentErrorCode.eventsLost]: "resource_exhausted",
};

/**
 * The agent refused a request with an ERROR frame; `agentCode` is its code
 * (AgentErrorCode). `message` comes from the guest and must already be
 * sanitized (sanitizeGuestText). A code the protocol does not define is the
 * guest misbehaving: kind `unavailable`, as AgentProtocolError.
 */
export class AgentError extends VmmError {
  readonly agentCode: number;
  constructor(agentCode: number, message: string) {
    super(kindOf[agentCode] ?? "unavailable", `agent: ${message}`);
    this.agentCode = agentCode;
  }
}

/**
 * The sandbox's agent speaks a protocol older than an operation needs (file
 * operations need version 2). Kind `failed_precondition`: retrying will not
 * help, a rootfs with the current agent will.
 */
export class AgentTooOldError extends VmmError {
  readonly agentProtocol: number;
  constructor(agentProtocol: number) {
    super(
      "failed_precondition",
      `agent too old (protocol ${agentProtocol}); rebuild the rootfs with the current agent`,
    );
    this.agentProtocol = agentProtocol;
  }
}

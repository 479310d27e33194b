import { type ErrorKind, VmmError } from "../errors.js";
import { AgentErrorCode } from "./protocol.js";

/** The agent (or something claiming to be it) broke the protocol: bad, oversized or truncated frames. */
export class AgentProtocolError extends VmmError {
  constructor(message: string, options?: ErrorOptions) {
    super("internal", `agent protocol error: ${message}`, options);
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
  [AgentErrorCode.internal]: "internal",
};

/** The agent refused a request with an ERROR frame; `agentCode` is its code (AgentErrorCode). */
export class AgentError extends VmmError {
  readonly agentCode: number;
  constructor(agentCode: number, message: string) {
    super(kindOf[agentCode] ?? "internal", `agent: ${message}`);
    this.agentCode = agentCode;
  }
}

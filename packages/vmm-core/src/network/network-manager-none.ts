import { FailedPreconditionError } from "../errors.js";
import type { NetworkManager, RecoveryReport } from "./network-manager.js";
import type { NetworkSlot, NoNetworkSlot } from "./slot.js";

const NO_NETWORK: NoNetworkSlot = Object.freeze({ mode: "none" as const });

/** Mode "none": sandboxes get no NIC; nothing is created on the host. */
export function createNoNetworkManager(): NetworkManager {
  return {
    mode: "none",
    async recover(): Promise<RecoveryReport> {
      return {
        kept: [],
        missing: [],
        removedNamespaces: [],
        removedLinks: [],
        replacedHostTable: false,
      };
    },
    async acquire(signal?: AbortSignal): Promise<NetworkSlot> {
      signal?.throwIfAborted();
      return NO_NETWORK;
    },
    async release(slot: NetworkSlot): Promise<void> {
      if (slot.mode !== "none") {
        throw new FailedPreconditionError(
          `network slot ${slot.netns} was not acquired from this manager (mode "none")`,
        );
      }
    },
    async applyEgressPolicy(): Promise<void> {
      throw new FailedPreconditionError("network mode none has no egress to police");
    },
    async close(): Promise<void> {},
    describeCommands(): string[] {
      return [];
    },
    levels() {
      return { ready: 0, inUse: 0, target: 0, max: 0 };
    },
  };
}

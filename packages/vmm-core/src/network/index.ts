// Per-sandbox networking: namespaces, TAPs, veths and nftables rules (docs/networking.md).

// Command runners: real, dry-run (--dry-run), recording (tests).
export type { Command, CommandResult, CommandRunner } from "./command-runner.js";
export { CommandFailedError, formatCommand } from "./command-runner.js";
export type {
  DryRunCommandRunner,
  DryRunCommandRunnerOptions,
} from "./command-runner-dry-run.js";
export { createDryRunCommandRunner } from "./command-runner-dry-run.js";
export type { ExecCommandRunnerOptions } from "./command-runner-exec.js";
export { createExecCommandRunner } from "./command-runner-exec.js";
export type { RecordingCommandRunner } from "./command-runner-recording.js";
export { createRecordingCommandRunner } from "./command-runner-recording.js";
export type {
  EgressBase,
  HostResolver,
  NetworkPolicy,
  ResolvedEgressPolicy,
} from "./egress-policy.js";
export {
  DEFAULT_NETWORK_POLICY,
  MAX_POLICY_ENTRIES,
  resolveNetworkPolicy,
  systemHostResolver,
  validateNetworkPolicy,
} from "./egress-policy.js";
export type { Logger } from "./logger.js";
export { silentLogger } from "./logger.js";
export type {
  NetworkManager,
  NetworkManagerOptions,
  NetworkPoolLevels,
  RecoveryReport,
} from "./network-manager.js";
export { createNetworkManager } from "./network-manager.js";
export type { HostService } from "./nft-rulesets.js";
export type { NetworkSlot, NoNetworkSlot, TapSlot } from "./slot.js";
export {
  GATEWAY_IP,
  GUEST_IP,
  GUEST_MAC,
  GUEST_NETMASK,
  GUEST_SUBNET,
  kernelIpArg,
} from "./slot.js";

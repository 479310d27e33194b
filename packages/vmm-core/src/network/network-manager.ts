import type { CommandRunner } from "./command-runner.js";
import type { ResolvedEgressPolicy } from "./egress-policy.js";
import type { Logger } from "./logger.js";
import { createNoNetworkManager } from "./network-manager-none.js";
import { createTapNetworkManager } from "./network-manager-tap.js";
import type { HostService } from "./nft-rulesets.js";
import type { NetworkSlot, TapSlot } from "./slot.js";

/** Hands out network slots (one per sandbox) from a pre-created pool. */
export interface NetworkManager {
  readonly mode: "tap" | "none";
  /**
   * Startup, once, before `acquire`: keeps the slots in `inUse` (indexes held by
   * live sandbox records), deletes every other namespace/veth of ours, installs
   * the host rules, and starts filling the pool in the background.
   */
  recover(inUse: readonly number[], signal?: AbortSignal): Promise<RecoveryReport>;
  /**
   * A ready slot (usually from the pool, without running a command).
   * Throws ResourceExhaustedError when every slot is in use.
   */
  acquire(signal?: AbortSignal): Promise<NetworkSlot>;
  /**
   * Deletes the slot's namespace (and with it the guest's connections) before
   * resolving; the pool is refilled in the background. Stop the VM first.
   */
  release(slot: NetworkSlot): Promise<void>;
  /**
   * Replaces the egress policy of an acquired slot atomically (one nft
   * transaction): connections the new policy still allows are untouched.
   */
  applyEgressPolicy(slot: TapSlot, policy: ResolvedEgressPolicy): Promise<void>;
  /** Waits for work in flight, then deletes every namespace and the host table. */
  close(): Promise<void>;
  /** The commands `recover([])` and the initial pool fill would run (dry-run plan). */
  describeCommands(): string[];
  /** How full the pool is now (metrics); all zero in mode "none". */
  levels(): NetworkPoolLevels;
}

/** The slot pool's levels at one moment. */
export interface NetworkPoolLevels {
  /** Namespaces created and waiting for a sandbox. */
  readonly ready: number;
  /** Slots held by sandboxes. */
  readonly inUse: number;
  /** Namespaces the pool keeps ready (network.pool_size, capped by max). */
  readonly target: number;
  /** Slots the address block allows at most (0 in mode "none"). */
  readonly max: number;
}

export interface RecoveryReport {
  /** Slots from `inUse` whose namespace exists; they stay allocated until released. */
  readonly kept: readonly TapSlot[];
  /** Indexes from `inUse` with no namespace left: their sandboxes have no network. */
  readonly missing: readonly number[];
  readonly removedNamespaces: readonly string[];
  readonly removedLinks: readonly string[];
  /** True when a host table from an earlier run was replaced. */
  readonly replacedHostTable: boolean;
}

export interface NetworkManagerOptions {
  /** "tap": a namespace + TAP per sandbox; "none": no NIC. Default "tap". */
  mode?: "tap" | "none";
  /** Where sandbox IPs come from: one /30 per slot. Default "10.200.0.0/16". */
  hostCidr?: string;
  /** At most this many slots; default and upper bound: the /30 blocks in hostCidr. */
  maxSlots?: number;
  /** Slots kept ready in advance. Default 8. */
  poolSize?: number;
  /** Prefix of namespace (`<prefix><i>`) and host veth (`<prefix>h<i>`) names. Default "vmm-". */
  namePrefix?: string;
  /** nftables table (family inet) in the host namespace and in each slot. Default "vmm". */
  nftTable?: string;
  /** Namespace playing "the host"; default undefined = the daemon's own. Tests always set it. */
  hostNetns?: string;
  /** Host interface for sandbox egress (masqueraded). Default undefined: no egress. */
  uplink?: string;
  /** Write net.ipv4.ip_forward=1 in the host namespace when `uplink` is set. Default true. */
  enableIpForward?: boolean;
  /** Host services sandboxes may reach (e.g. DNS on a local resolver). Default none. */
  allowHostServices?: readonly HostService[];
  /** Destinations sandboxes may never reach. Default ["169.254.0.0/16"] (cloud metadata). */
  blockedCidrs?: readonly string[];
  /** Resolvers given to the guest in `ip=` (at most 2). Default none. */
  guestDnsServers?: readonly string[];
  /** TAP name inside every namespace. Default "tap0". */
  tapName?: string;
  /** Owner uid of the TAP (jailer uid). Default: none (root only). */
  tapOwnerUid?: number;
  /** NIC name in the guest, for `ip=`. Default "eth0". */
  guestDevice?: string;
  /** Slot setups running at once. Default 2. */
  maxParallelSetups?: number;
  /** Runs every command. Default: `createExecCommandRunner({ timeoutMs: 10_000 })`. */
  runner?: CommandRunner;
  logger?: Logger;
}

export function createNetworkManager(options: NetworkManagerOptions = {}): NetworkManager {
  return (options.mode ?? "tap") === "none"
    ? createNoNetworkManager()
    : createTapNetworkManager(options);
}

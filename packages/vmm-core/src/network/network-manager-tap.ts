/**
 * Mode "tap": a pool of pre-created slot namespaces (see slot.ts for the layout).
 *
 * Invariants (all bookkeeping is synchronous, so concurrent calls cannot
 * double-allocate):
 * - `used` holds every index this manager owns in any state: being created,
 *   ready, allocated, being removed, or poisoned (removal failed; never reused).
 * - `ready` and `allocated` are disjoint; an index is in at most one of them.
 * - `pending` counts creations in flight; each ends in `deliver` (first waiter,
 *   else `ready`) or in `failCreation`. A waiter exists only while
 *   `pending >= waiters.length`, so every waiter has a creation coming.
 */
import {
  FailedPreconditionError,
  InvalidArgumentError,
  ResourceExhaustedError,
  UnavailableError,
} from "../errors.js";
import { type Command, type CommandRunner, formatCommand } from "./command-runner.js";
import { createExecCommandRunner } from "./command-runner-exec.js";
import type { ResolvedEgressPolicy } from "./egress-policy.js";
import { formatIpv4Cidr, type Ipv4Cidr, parseIpv4, parseIpv4Cidr, sizeOf } from "./ipv4.js";
import { silentLogger } from "./logger.js";
import {
  egressPolicyCommand,
  type HostCommandOptions,
  hasInetTable,
  hostSetupCommands,
  hostTeardownCommands,
  listLinksCommand,
  listNetnsCommand,
  listTablesCommand,
  parseLinkList,
  parseNetnsList,
  removeCommands,
  type SlotCommandOptions,
  slotSetupCommands,
  slotSetupPlan,
} from "./network-commands.js";
import type {
  NetworkManager,
  NetworkManagerOptions,
  NetworkPoolLevels,
  RecoveryReport,
} from "./network-manager.js";
import type { HostService } from "./nft-rulesets.js";
import {
  MAX_IFNAME_LENGTH,
  type NetworkSlot,
  type SlotLayout,
  slotAt,
  type TapSlot,
  vethHostName,
} from "./slot.js";

interface Waiter {
  resolve(slot: TapSlot): void;
  reject(err: unknown): void;
}

interface Settings {
  readonly layout: SlotLayout;
  readonly maxSlots: number;
  readonly poolSize: number;
  readonly host: HostCommandOptions;
  readonly slot: SlotCommandOptions;
  readonly maxParallelSetups: number;
}

const NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function settingsFrom(options: NetworkManagerOptions): Settings {
  const cidrText = options.hostCidr ?? "10.200.0.0/16";
  const hostCidr: Ipv4Cidr = parseIpv4Cidr("network.host_cidr", cidrText);
  if (hostCidr.prefixLength > 30) {
    throw new InvalidArgumentError("network.host_cidr", `${cidrText} is smaller than one /30`, {
      hint: "each slot needs a /30; use e.g. 10.200.0.0/16",
    });
  }
  const blocks = sizeOf(hostCidr) / 4;
  const maxSlots = options.maxSlots ?? blocks;
  if (!Number.isInteger(maxSlots) || maxSlots < 1 || maxSlots > blocks) {
    throw new InvalidArgumentError(
      "network.max_slots",
      `${maxSlots} must be an integer between 1 and ${blocks} (the /30 blocks in ${cidrText})`,
    );
  }
  const poolSize = options.poolSize ?? 8;
  if (!Number.isInteger(poolSize) || poolSize < 0) {
    throw new InvalidArgumentError("network.pool_size", `${poolSize} must be an integer ≥ 0`);
  }
  const namePrefix = options.namePrefix ?? "vmm-";
  const longest = vethHostName({ namePrefix }, maxSlots - 1);
  if (!NAME.test(namePrefix) || longest.length > MAX_IFNAME_LENGTH) {
    throw new InvalidArgumentError(
      "network.name_prefix",
      `${JSON.stringify(namePrefix)} must be letters, digits, "_.-" and short enough that ${JSON.stringify(longest)} fits in ${MAX_IFNAME_LENGTH} characters`,
      { hint: "use a shorter prefix or lower network.max_slots" },
    );
  }
  const table = options.nftTable ?? "vmm";
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(table)) {
    throw new InvalidArgumentError(
      "network.nft_table",
      `${JSON.stringify(table)} is not a plain name`,
    );
  }
  const tapName = options.tapName ?? "tap0";
  const uplink = options.uplink;
  for (const [field, name] of [
    ["network.tap_name", tapName],
    ["network.uplink", uplink],
  ] as const) {
    if (
      name !== undefined &&
      (!/^[A-Za-z0-9_.:-]+$/.test(name) || name.length > MAX_IFNAME_LENGTH)
    ) {
      throw new InvalidArgumentError(field, `${JSON.stringify(name)} is not an interface name`);
    }
  }
  const guestDevice = options.guestDevice ?? "eth0";
  const dnsServers = [...(options.guestDnsServers ?? [])];
  if (dnsServers.length > 2) {
    throw new InvalidArgumentError(
      "network.guest_dns_servers",
      "the kernel ip= argument takes at most 2",
    );
  }
  for (const dns of dnsServers) parseIpv4("network.guest_dns_servers", dns);
  const blockedCidrs = [...(options.blockedCidrs ?? ["169.254.0.0/16"])];
  for (const cidr of blockedCidrs) {
    if (cidr.includes("/")) parseIpv4Cidr("network.blocked_cidrs", cidr);
    else parseIpv4("network.blocked_cidrs", cidr);
  }
  const allowHostServices: HostService[] = [...(options.allowHostServices ?? [])];
  for (const s of allowHostServices) {
    if (
      (s.protocol !== "tcp" && s.protocol !== "udp") ||
      !Number.isInteger(s.port) ||
      s.port < 1 ||
      s.port > 65535
    ) {
      throw new InvalidArgumentError(
        "network.allow_host_services",
        `${JSON.stringify(s)}: need protocol tcp|udp and port 1-65535`,
      );
    }
    if (s.address !== undefined) parseIpv4("network.allow_host_services", s.address);
  }
  const hostNetns = options.hostNetns;
  return {
    layout: { hostCidr, namePrefix, tapName, guestDevice, dnsServers },
    maxSlots,
    poolSize: Math.min(poolSize, maxSlots),
    host: {
      hostNetns,
      table,
      vethHostPattern: `${namePrefix}h*`,
      hostCidr,
      uplink,
      allowHostServices,
      blockedCidrs,
      enableIpForward: uplink !== undefined && (options.enableIpForward ?? true),
    },
    slot: {
      hostNetns,
      table,
      tapOwnerUid: options.tapOwnerUid,
      egress: { blockedCidrs, allowHostServices },
    },
    maxParallelSetups: Math.max(1, options.maxParallelSetups ?? 2),
  };
}

function createLimiter(max: number): <T>(work: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (work) => {
    if (active >= max) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await work();
    } finally {
      const next = queue.shift();
      if (next === undefined) active--;
      else next();
    }
  };
}

export function createTapNetworkManager(options: NetworkManagerOptions): NetworkManager {
  const s = settingsFrom(options);
  const logger = (options.logger ?? silentLogger).child({ component: "network" });
  const runner: CommandRunner = options.runner ?? createExecCommandRunner({ logger });
  const limit = createLimiter(s.maxParallelSetups);
  const netnsPattern = new RegExp(`^${escapeRegExp(s.layout.namePrefix)}(0|[1-9][0-9]*)$`);
  const vethPattern = new RegExp(`^${escapeRegExp(s.layout.namePrefix)}h(0|[1-9][0-9]*)$`);

  let state: "new" | "starting" | "running" | "closing" | "closed" = "new";
  const used = new Set<number>();
  /** Indexes whose removal failed: kept in `used` so they are never handed out again. */
  const retired = new Set<number>();
  /** Set once recover() has run a command; close() then sweeps. */
  let touched = false;
  const ready: TapSlot[] = [];
  const allocated = new Map<number, TapSlot>();
  const waiters: Waiter[] = [];
  let pending = 0;
  let refillScheduled = false;
  const tasks = new Set<Promise<void>>();

  function track(work: Promise<void>, what: string): void {
    const task: Promise<void> = work
      .catch((err: unknown) => logger.error({ err }, `${what} failed`))
      .finally(() => tasks.delete(task));
    tasks.add(task);
  }

  async function run(commands: readonly Command[], signal?: AbortSignal): Promise<void> {
    for (const command of commands) await runner.run(command, signal);
  }

  async function setupSlot(slot: TapSlot): Promise<void> {
    const plan = slotSetupPlan(slot, s.slot);
    await runner.run(plan.createNetns);
    const results = await Promise.allSettled(plan.parallel.map((group) => run(group)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed === undefined) return;
    try {
      await removeSlots([slot]);
    } catch (cleanupErr) {
      retired.add(slot.index);
      logger.error(
        { err: cleanupErr, netns: slot.netns },
        "cleanup after failed slot setup failed; index retired",
      );
    }
    throw failed.reason;
  }

  async function removeSlots(slots: readonly TapSlot[]): Promise<void> {
    await run(
      removeCommands(
        s.host.hostNetns,
        slots.map((slot) => slot.vethHost),
        slots.map((slot) => slot.netns),
      ),
    );
  }

  function reserveIndex(): number | undefined {
    if (used.size >= s.maxSlots) return undefined;
    for (let i = 0; i < s.maxSlots; i++) if (!used.has(i)) return i;
    return undefined;
  }

  function deliver(slot: TapSlot): void {
    const waiter = state === "running" ? waiters.shift() : undefined;
    if (waiter === undefined) {
      ready.push(slot);
      return;
    }
    allocated.set(slot.index, slot);
    waiter.resolve(slot);
  }

  function failCreation(err: unknown): void {
    while (waiters.length > pending) waiters.shift()?.reject(err);
  }

  /** Starts creating one more slot; false when every index is taken. */
  function startCreation(): boolean {
    const index = reserveIndex();
    if (index === undefined) return false;
    used.add(index);
    pending++;
    const slot = slotAt(s.layout, index);
    const created = limit(() => setupSlot(slot)).then(
      () => {
        pending--;
        deliver(slot);
      },
      (err: unknown) => {
        pending--;
        // setupSlot removed what it made; if that failed too, the index stays retired.
        if (!retired.has(index)) used.delete(index);
        failCreation(err);
        throw err;
      },
    );
    track(created, `creating network slot ${slot.netns}`);
    return true;
  }

  /**
   * Starts refilling after the current call returns: spawning a command is
   * synchronous work (fork), which `acquire` must not pay for.
   */
  function scheduleRefill(): void {
    if (refillScheduled) return;
    refillScheduled = true;
    setImmediate(() => {
      refillScheduled = false;
      refill();
    });
  }

  function refill(): void {
    if (state !== "running") return;
    while (ready.length + pending - waiters.length < s.poolSize && startCreation()) {
      // each iteration started one creation
    }
  }

  function exhausted(): ResourceExhaustedError {
    const cidr = formatIpv4Cidr(s.layout.hostCidr);
    return new ResourceExhaustedError(
      `no free network slot: all ${s.maxSlots} in use (network.host_cidr ${cidr}${options.maxSlots === undefined ? "" : `, network.max_slots ${s.maxSlots}`})`,
      { hint: "release sandboxes, or widen network.host_cidr / raise network.max_slots" },
    );
  }

  async function listOurs(): Promise<{ netns: Map<number, string>; veths: Map<number, string> }> {
    const [nsOut, linkOut] = await Promise.all([
      runner.run(listNetnsCommand()),
      runner.run(listLinksCommand(s.host.hostNetns)),
    ]);
    const netns = new Map<number, string>();
    for (const name of parseNetnsList(nsOut.stdout)) {
      const m = netnsPattern.exec(name);
      if (m) netns.set(Number(m[1]), name);
    }
    const veths = new Map<number, string>();
    for (const name of parseLinkList(linkOut.stdout)) {
      const m = vethPattern.exec(name);
      if (m) veths.set(Number(m[1]), name);
    }
    return { netns, veths };
  }

  async function recover(inUse: readonly number[], signal?: AbortSignal): Promise<RecoveryReport> {
    if (state !== "new") {
      throw new FailedPreconditionError(`network manager recover() called twice (state ${state})`, {
        hint: "call recover(inUse) once at startup, before acquire()",
      });
    }
    state = "starting";
    touched = true;
    try {
      signal?.throwIfAborted();
      const found = await listOurs();
      const keep = new Set(inUse.filter((i) => found.netns.has(i) && i < s.maxSlots));
      const missing = inUse.filter((i) => !keep.has(i));
      const removedNamespaces = [...found.netns].filter(([i]) => !keep.has(i)).map(([, n]) => n);
      const removedLinks = [...found.veths].filter(([i]) => !keep.has(i)).map(([, n]) => n);
      await run(removeCommands(s.host.hostNetns, removedLinks, removedNamespaces), signal);
      const tables = await runner.run(listTablesCommand(s.host.hostNetns), signal);
      const replacedHostTable = hasInetTable(tables.stdout, s.host.table);
      await run(hostSetupCommands(s.host), signal);
      const kept: TapSlot[] = [];
      for (const index of keep) {
        const slot = slotAt(s.layout, index);
        used.add(index);
        allocated.set(index, slot);
        kept.push(slot);
      }
      state = "running";
      logger.info(
        { kept: kept.length, missing, removedNamespaces, removedLinks, replacedHostTable },
        "network recovered",
      );
      refill();
      return { kept, missing, removedNamespaces, removedLinks, replacedHostTable };
    } catch (err) {
      state = "new";
      throw err;
    }
  }

  async function acquire(signal?: AbortSignal): Promise<NetworkSlot> {
    if (state === "new" || state === "starting") {
      throw new FailedPreconditionError("network manager not started", {
        hint: "call recover(inUse) once at startup before acquire()",
      });
    }
    if (state !== "running") throw new UnavailableError("network manager is closed");
    signal?.throwIfAborted();
    const slot = ready.shift();
    if (slot !== undefined) {
      allocated.set(slot.index, slot);
      scheduleRefill();
      return slot;
    }
    if (pending <= waiters.length && !startCreation()) throw exhausted();
    const acquired = new Promise<TapSlot>((resolve, reject) => {
      const onAbort = (): void => {
        const at = waiters.indexOf(waiter);
        if (at >= 0) waiters.splice(at, 1); // its creation now refills the pool instead
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve(slot) {
          signal?.removeEventListener("abort", onAbort);
          resolve(slot);
        },
        reject(err) {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      waiters.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    scheduleRefill();
    return acquired;
  }

  async function release(slot: NetworkSlot): Promise<void> {
    const current = slot.mode === "tap" ? allocated.get(slot.index) : undefined;
    if (slot.mode !== "tap" || current === undefined || current.netns !== slot.netns) {
      throw new FailedPreconditionError(
        `network slot ${slot.mode === "tap" ? slot.netns : "(none)"} is not in use by this manager`,
        { hint: "release each acquired slot exactly once" },
      );
    }
    allocated.delete(slot.index);
    const removed = removeSlots([current]).then(
      () => {
        used.delete(current.index);
        refill();
      },
      (err: unknown) => {
        retired.add(current.index);
        logger.error({ err, netns: current.netns }, "removing network slot failed; index retired");
        refill();
        throw err;
      },
    );
    track(
      removed.catch(() => {}),
      "releasing network slot",
    );
    await removed;
  }

  async function applyEgressPolicy(slot: TapSlot, policy: ResolvedEgressPolicy): Promise<void> {
    const current = allocated.get(slot.index);
    if (current === undefined || current.netns !== slot.netns) {
      throw new FailedPreconditionError(`network slot ${slot.netns} is not in use`);
    }
    await runner.run(egressPolicyCommand(current, s.slot, policy));
  }

  async function close(): Promise<void> {
    if (state === "closed" || state === "closing") {
      await Promise.allSettled([...tasks]);
      return;
    }
    const wasStarted = state === "running";
    state = "closing";
    for (const waiter of waiters.splice(0)) {
      waiter.reject(new UnavailableError("network manager closed while waiting for a slot"));
    }
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
    try {
      if (wasStarted || touched) {
        const found = await listOurs();
        await run(
          removeCommands(s.host.hostNetns, [...found.veths.values()], [...found.netns.values()]),
        );
        await run(hostTeardownCommands(s.host));
      }
    } finally {
      ready.length = 0;
      allocated.clear();
      used.clear();
      state = "closed";
    }
  }

  function describeCommands(): string[] {
    const commands = hostSetupCommands(s.host);
    for (let i = 0; i < s.poolSize; i++) {
      commands.push(...slotSetupCommands(slotAt(s.layout, i), s.slot));
    }
    return commands.map(formatCommand);
  }

  function levels(): NetworkPoolLevels {
    return { ready: ready.length, inUse: allocated.size, target: s.poolSize, max: s.maxSlots };
  }

  return {
    mode: "tap",
    recover,
    acquire,
    release,
    applyEgressPolicy,
    close,
    describeCommands,
    levels,
  };
}

import { FailedPreconditionError } from "../errors.js";
import {
  type NetworkPolicy,
  type ResolvedEgressPolicy,
  resolveNetworkPolicy,
  systemHostResolver,
} from "../network/index.js";
import type { SandboxContext } from "./context.js";
import type { Sandbox } from "./sandbox.js";

/**
 * Egress policies: resolved (host names looked up once, when applied) and
 * loaded into the sandbox's slot namespace as one nft transaction, then kept
 * in the sandbox record. Updates of one sandbox are applied one at a time, in
 * call order, so the record always describes the rules in force.
 */
export class NetworkPolicies {
  readonly #queues = new WeakMap<Sandbox, Promise<unknown>>();

  constructor(private readonly ctx: SandboxContext) {}

  /** Validates and resolves a policy (INVALID_ARGUMENT naming the bad entry). */
  resolve(field: string, policy: NetworkPolicy): Promise<ResolvedEgressPolicy> {
    return resolveNetworkPolicy(field, policy, this.ctx.opts.resolveHost ?? systemHostResolver);
  }

  /** UpdateNetworkPolicy: replaces the policy of a live or paused sandbox. */
  async update(id: string, policy: NetworkPolicy): Promise<void> {
    const s = this.ctx.registry.get(id);
    this.usable(s);
    const resolved = await this.resolve("policy", policy);
    const previous = this.#queues.get(s) ?? Promise.resolve();
    const next = previous
      .catch(() => {})
      .then(async () => {
        this.usable(s);
        const tap = s.tap!;
        await this.ctx.opts.network.applyEgressPolicy(tap, resolved);
        s.setNetworkPolicy(policy);
        await this.ctx.registry.persist(s);
        s.log.info(
          {
            allowOut: policy.allowOut.length,
            denyOut: policy.denyOut.length,
            internet: policy.internet,
          },
          "egress policy updated",
        );
      });
    this.#queues.set(s, next);
    await next;
  }

  private usable(s: Sandbox): void {
    if (s.spec.network !== "tap") {
      throw new FailedPreconditionError(
        `sandbox ${s.id} has network mode none: there is no egress to police`,
        { hint: 'create it with network mode "tap"' },
      );
    }
    if (!s.tap)
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}: it has no network now`);
  }
}

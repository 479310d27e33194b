import type { Clients } from "./client.js";
import { NotFoundError, UsageError } from "./errors.js";
import { listAllSandboxes, listAllSnapshots } from "./list-all.js";

/**
 * Picks the one id among `ids` that `given` names: an exact match wins,
 * otherwise `given` must be the prefix of exactly one id.
 * @throws UsageError listing the candidates when the prefix is ambiguous
 * @throws NotFoundError when nothing matches
 */
export function pickByPrefix(
  kind: "sandbox" | "snapshot",
  given: string,
  ids: readonly string[],
): string {
  if (given === "") throw new UsageError(`empty ${kind} id`);
  if (ids.includes(given)) return given;
  const matches = ids.filter((id) => id.startsWith(given));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    throw new NotFoundError(
      `no ${kind} matches "${given}"`,
      `list them with 'vmm ${kind === "sandbox" ? "list" : "snapshot list"}'`,
    );
  }
  throw new UsageError(
    `${kind} id prefix "${given}" is ambiguous: it matches ${matches.join(", ")}`,
    "give more characters of the id",
  );
}

/** Resolves a sandbox id or unique id prefix with List (every page). */
export async function resolveSandboxId(
  clients: Clients,
  given: string,
  signal: AbortSignal,
): Promise<string> {
  const res = await listAllSandboxes(clients, {}, signal);
  return pickByPrefix(
    "sandbox",
    given,
    res.sandboxes.map((s) => s.id),
  );
}

/** Resolves a snapshot id or unique id prefix with ListSnapshots (every page). */
export async function resolveSnapshotId(
  clients: Clients,
  given: string,
  signal: AbortSignal,
): Promise<string> {
  const res = await listAllSnapshots(clients, {}, signal);
  return pickByPrefix(
    "snapshot",
    given,
    res.snapshots.map((s) => s.id),
  );
}

import { ID_MAX_LENGTH } from "../internal/index.js";

/**
 * The name Checkpoint gives a snapshot when the caller gives none:
 * `<sandbox id>-<Unix ms>`, the id part shortened so the whole fits the
 * 63-character snapshot_name rule for every valid sandbox id (a 13-digit
 * time leaves 49 characters of the id).
 */
export function defaultSnapshotName(sandboxId: string, nowMs: number): string {
  const suffix = `-${Math.trunc(nowMs)}`;
  return `${sandboxId.slice(0, ID_MAX_LENGTH - suffix.length)}${suffix}`;
}

/**
 * The order of List and ListSnapshots answers: creation time (ms), then id by
 * UTF-16 code unit (not locale: a page cursor compares keys with the same
 * rule, so the order must not depend on the host's collation).
 */
export function compareByCreation(
  a: { readonly createdAt: Date; readonly id: string },
  b: { readonly createdAt: Date; readonly id: string },
): number {
  return compareListKeys(
    { createdAtMs: a.createdAt.getTime(), id: a.id },
    { createdAtMs: b.createdAt.getTime(), id: b.id },
  );
}

/** A position in a List or ListSnapshots answer: the key of one item. */
export interface ListKey {
  readonly createdAtMs: number;
  readonly id: string;
}

/** `compareByCreation` on keys: negative when `a` comes first. */
export function compareListKeys(a: ListKey, b: ListKey): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs < b.createdAtMs ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id < b.id ? -1 : 1;
}

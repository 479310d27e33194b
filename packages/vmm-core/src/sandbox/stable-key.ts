/**
 * A JSON text of `value` with object keys sorted at every level: equal values
 * give equal keys whatever the order their fields were set in (Create's
 * idempotency key, golden snapshot keys).
 */
export function stableKey(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

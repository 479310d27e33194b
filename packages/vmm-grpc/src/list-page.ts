import { createHash } from "node:crypto";
import { compareListKeys, InvalidArgumentError, type ListKey } from "@vmm/core";

/** Paging settings of List and ListSnapshots (config `[grpc]`). */
export interface ListPaging {
  /**
   * Items per page when the request's page_size is 0, and the most a request
   * may ask for (config `grpc.list_page_size`).
   */
  readonly pageSize: number;
  /**
   * Largest encoded response, in bytes (config `grpc.max_message_bytes`). A
   * page holds items whose binary size, plus 64 bytes each, stays within half
   * of it: the Connect JSON form of the same page (field names, escaped
   * quotes) is at most about twice that, so either encoding fits.
   */
  readonly maxMessageBytes: number;
}

/** The defaults: 1000 items, 4 MiB (the daemon's config defaults). */
export const DEFAULT_LIST_PAGING: ListPaging = { pageSize: 1000, maxMessageBytes: 4 << 20 };

/** Per-item allowance for JSON field names and framing, bytes (see `ListPaging`). */
const ITEM_OVERHEAD_BYTES = 64;

/** Longest page token we issue is ~200 characters; anything much longer is not ours. */
const MAX_TOKEN_CHARS = 1024;

/** One page of a listing and the token of the next one ("" on the last page). */
export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** What `takePage` needs to know about a listing. */
export interface PageRequest<T> {
  /** Which listing ("sandboxes", "snapshots"): a token of one is refused by the other. */
  readonly listing: string;
  /** The request's filters; a token is only valid with the filters it was made for. */
  readonly filter: unknown;
  readonly pageSize: number;
  readonly pageToken: string;
  /** The key of an item; `items` are sorted by `compareListKeys` of it. */
  readonly keyOf: (item: T) => ListKey;
  /** Encoded size of an item in the response, in bytes. */
  readonly sizeOf: (item: T) => number;
}

/**
 * Cuts one page out of `items` (every match, sorted by key). The token holds
 * the key of the page's last item, so the next page starts right after it
 * whatever was added or removed meanwhile. A page ends at `page_size`
 * (0 = the default, capped by it) or before its size would pass the byte
 * budget of `paging`; it holds at least one item, so paging always advances.
 * Throws InvalidArgumentError (field page_token) for a token that is
 * malformed or was made for another listing or other filters.
 */
export function takePage<T>(items: readonly T[], req: PageRequest<T>, paging: ListPaging): Page<T> {
  // A hash per call only when a token is read or written (the common one-page List needs none).
  const fingerprint = () => filterFingerprint(req.listing, req.filter);
  const after = req.pageToken === "" ? undefined : decodeToken(req.pageToken, fingerprint());
  const limit = req.pageSize === 0 ? paging.pageSize : Math.min(req.pageSize, paging.pageSize);
  const budget = Math.floor(paging.maxMessageBytes / 2);
  let i = after === undefined ? 0 : firstAfter(items, after, req.keyOf);
  const page: T[] = [];
  let used = 0;
  for (; i < items.length && page.length < limit; i++) {
    const item = items[i] as T;
    const size = req.sizeOf(item) + ITEM_OVERHEAD_BYTES;
    if (page.length > 0 && used + size > budget) break;
    page.push(item);
    used += size;
  }
  const last = page.at(-1);
  return {
    items: page,
    nextPageToken:
      i < items.length && last !== undefined ? encodeToken(req.keyOf(last), fingerprint()) : "",
  };
}

/** Index of the first item whose key sorts after `key` (binary search). */
function firstAfter<T>(items: readonly T[], key: ListKey, keyOf: (item: T) => ListKey): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareListKeys(keyOf(items[mid] as T), key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function filterFingerprint(listing: string, filter: unknown): string {
  return createHash("sha256")
    .update(listing)
    .update("\0")
    .update(stableJson(filter))
    .digest("base64url")
    .slice(0, 16);
}

function encodeToken(key: ListKey, fingerprint: string): string {
  return Buffer.from(
    JSON.stringify({ v: 1, f: fingerprint, t: key.createdAtMs, i: key.id }),
  ).toString("base64url");
}

function decodeToken(token: string, fingerprint: string): ListKey {
  const bad = (why: string) =>
    new InvalidArgumentError("page_token", why, {
      hint: "send the next_page_token of the previous response with the same filters, or no page_token to start again",
    });
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw bad("is not a page token of this daemon");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad("is not a page token of this daemon");
  }
  const p = parsed as { v?: unknown; f?: unknown; t?: unknown; i?: unknown } | null;
  if (
    typeof p !== "object" ||
    p === null ||
    p.v !== 1 ||
    typeof p.f !== "string" ||
    typeof p.t !== "number" ||
    !Number.isSafeInteger(p.t) ||
    typeof p.i !== "string"
  ) {
    throw bad("is not a page token of this daemon");
  }
  if (p.f !== fingerprint) {
    throw bad("was made for another listing or other filters");
  }
  return { createdAtMs: p.t, id: p.i };
}

/** JSON with object keys sorted, so equal filters give equal fingerprints. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

import type { Page } from "./list-page.js";

/** Request shapes kept at once; a fleet is polled by a few dashboards, not by thousands of filters. */
const MAX_KEPT = 8;

interface Kept<T, M> {
  readonly items: readonly T[];
  readonly nextPageToken: string;
  readonly message: M;
}

/**
 * The last answer of a listing per request shape, handed out again while the
 * page it would get holds the very same items. Items are frozen views (a new
 * object after any change), so identity says "unchanged" (a page with an item
 * that is not frozen is answered anew every time); the answer is a
 * frozen message, which the patched connect encodes once per format
 * (patches/@connectrpc__connect, `reuseFrozenEncoding`): a client polling an
 * unchanged fleet costs the daemon a filter and a page cut, not an encoding.
 */
export class ListAnswers<T, M extends object> {
  readonly #kept = new Map<string, Kept<T, M>>();

  /**
   * The answer for `page`, asked as `key` (everything in the request that
   * shapes the page): the kept one if `page` holds the same items and token,
   * else `build(page)`, frozen and kept.
   */
  answer(key: string, page: Page<T>, build: (page: Page<T>) => M): M {
    const kept = this.#kept.get(key);
    if (kept !== undefined && samePage(kept, page)) return kept.message;
    const message = Object.freeze(build(page));
    // An item that is not frozen can change in place (another SandboxApi): never reused.
    if (!page.items.every((item) => Object.isFrozen(item))) return message;
    this.#kept.delete(key);
    this.#kept.set(key, { items: page.items, nextPageToken: page.nextPageToken, message });
    if (this.#kept.size > MAX_KEPT) this.#kept.delete(this.#kept.keys().next().value as string);
    return message;
  }
}

function samePage<T>(kept: Kept<T, unknown>, page: Page<T>): boolean {
  if (kept.nextPageToken !== page.nextPageToken || kept.items.length !== page.items.length)
    return false;
  for (let i = 0; i < page.items.length; i++) if (kept.items[i] !== page.items[i]) return false;
  return true;
}

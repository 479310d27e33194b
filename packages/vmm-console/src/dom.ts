// A tiny element builder: the console's few views do not need a framework.

type Child = Node | string | false | null | undefined;

/** Attributes (strings), event handlers (`on…` functions) and a few properties of an element. */
export type Props = Record<string, string | boolean | ((e: Event) => void) | undefined>;

/**
 * Creates `<tag>` with `props` and `children`. `on<event>` props become listeners, boolean
 * props become present/absent attributes, strings become attributes. Text children are text
 * nodes (never parsed as HTML).
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === false || child === null || child === undefined) continue;
    el.append(child);
  }
  return el;
}

/** Replaces the children of `el`. */
export function replaceChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== false && c != null));
}

/** A Unix time in seconds as local time for tables; "" for 0 (not set). */
export function formatUnixSeconds(seconds: number | bigint): string {
  const n = Number(seconds);
  return n === 0 ? "" : new Date(n * 1000).toLocaleString(undefined, { hour12: false });
}

/** `k=v, k2=v2` for a label map. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

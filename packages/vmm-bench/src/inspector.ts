/**
 * A minimal Chrome DevTools Protocol client for a daemon started with
 * `--inspect=127.0.0.1:0`: force a full GC, read heap usage, and count a
 * heap snapshot's objects by constructor (idle-rss).
 */

/** The inspector's WebSocket URL from Node's "Debugger listening on ws://…" stderr line. */
export function inspectorUrlFromLog(stderr: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
}

/** One CDP session over the inspector's WebSocket. */
export class InspectorSession {
  readonly #ws: WebSocket;
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  readonly #listeners = new Map<string, (params: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as {
        id?: number;
        method?: string;
        params?: unknown;
        result?: unknown;
        error?: { message: string };
      };
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`inspector: ${msg.error.message}`));
        else p?.resolve(msg.result);
      } else if (msg.method) this.#listeners.get(msg.method)?.(msg.params);
    });
    ws.addEventListener("close", () => {
      for (const p of this.#pending.values()) p.reject(new Error("inspector connection closed"));
      this.#pending.clear();
    });
  }

  static async connect(url: string): Promise<InspectorSession> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
        once: true,
      });
    });
    return new InspectorSession(ws);
  }

  call<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Full GC, then the V8 heap's used and total bytes. */
  async gcAndHeapUsage(): Promise<{ usedSize: number; totalSize: number }> {
    await this.call("HeapProfiler.collectGarbage");
    return this.call("Runtime.getHeapUsage");
  }

  /** A heap snapshot (taken after a GC, as V8 does), summarized per constructor. */
  async constructorCounts(): Promise<Map<string, ConstructorTotal>> {
    let json = "";
    this.#listeners.set("HeapProfiler.addHeapSnapshotChunk", (p) => {
      json += (p as { chunk: string }).chunk;
    });
    try {
      await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    } finally {
      this.#listeners.delete("HeapProfiler.addHeapSnapshotChunk");
    }
    return summarizeHeapSnapshot(JSON.parse(json) as HeapSnapshot);
  }

  close(): void {
    this.#ws.close();
  }
}

/** The parts of V8's .heapsnapshot format read here. */
export interface HeapSnapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: readonly string[];
      readonly node_types: readonly [readonly string[], ...unknown[]];
    };
  };
  readonly nodes: readonly number[];
  readonly strings: readonly string[];
}

/** Objects of one constructor (or V8 node type) in a snapshot: how many, and their own bytes. */
export interface ConstructorTotal {
  count: number;
  selfSize: number;
}

/**
 * Counts a snapshot's nodes by name: objects by constructor name, closures as
 * "(closure)", strings as "(string)", other V8 types as "(<type>)".
 */
export function summarizeHeapSnapshot(s: HeapSnapshot): Map<string, ConstructorTotal> {
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf("type");
  const iName = f.indexOf("name");
  const iSize = f.indexOf("self_size");
  const out = new Map<string, ConstructorTotal>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    const key =
      type === "object" || type === "native"
        ? (s.strings[s.nodes[i + iName]!] ?? "?")
        : type === "concatenated string" || type === "sliced string"
          ? "(string)"
          : `(${type})`;
    const t = out.get(key) ?? { count: 0, selfSize: 0 };
    t.count++;
    t.selfSize += s.nodes[i + iSize]!;
    out.set(key, t);
  }
  return out;
}

/** `after - before` per constructor, largest growth in bytes first, top `limit`. */
export function diffConstructors(
  before: Map<string, ConstructorTotal>,
  after: Map<string, ConstructorTotal>,
  limit: number,
): Array<{ name: string; count: number; selfSize: number }> {
  const rows: Array<{ name: string; count: number; selfSize: number }> = [];
  for (const [name, a] of after) {
    const b = before.get(name) ?? { count: 0, selfSize: 0 };
    rows.push({ name, count: a.count - b.count, selfSize: a.selfSize - b.selfSize });
  }
  return rows.sort((x, y) => y.selfSize - x.selfSize).slice(0, limit);
}

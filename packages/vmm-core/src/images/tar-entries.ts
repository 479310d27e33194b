/**
 * Reads the entry headers of an uncompressed tar stream (POSIX ustar, pax
 * extended headers, GNU long names) without extracting anything: the
 * security scan of image layers (layer-path-guard.ts) looks at names and link
 * targets before any tool writes a byte.
 */

/** One archive member as its headers describe it (pax and GNU long names applied). */
export interface TarEntry {
  /** Path in the archive, as written (not normalized). */
  readonly name: string;
  /** ustar typeflag: `0` file, `1` hard link, `2` symlink, `3`/`4` devices, `5` dir, `6` FIFO. */
  readonly type: string;
  /** Target of a hard link (an archive path) or a symlink (any text). */
  readonly linkname: string;
  readonly size: number;
}

const BLOCK = 512;

/**
 * Yields the entries of the tar archive read from `chunks`, in order. Throws
 * an Error naming the offset on a corrupt header (bad checksum, truncation).
 */
export async function* tarEntries(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const reader = new BlockReader(chunks);
  let pax: Record<string, string> = {};
  let globalPax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const offset = reader.offset;
    const header = await reader.read(BLOCK);
    if (header === undefined || header.every((b) => b === 0)) return; // end marker (or a bare EOF)
    if (!checksumOk(header)) throw new Error(`tar header at byte ${offset}: bad checksum`);
    const type = String.fromCharCode(header[156] || 0x30);
    const size = parseNumber(header.subarray(124, 136));
    const body = async () => {
      const data = await reader.read(size);
      if (data === undefined) throw new Error(`tar entry at byte ${offset}: truncated`);
      await reader.skip(padding(size));
      return data;
    };
    if (type === "x" || type === "g") {
      const records = parsePax(await body());
      if (type === "g") globalPax = { ...globalPax, ...records };
      else pax = records;
      continue;
    }
    if (type === "L" || type === "K") {
      const text = cString(await body());
      if (type === "L") longName = text;
      else longLink = text;
      continue;
    }
    const prefix = header[345] !== 0 && isUstar(header) ? cString(header.subarray(345, 500)) : "";
    const base = cString(header.subarray(0, 100));
    const name =
      pax.path ?? globalPax.path ?? longName ?? (prefix === "" ? base : `${prefix}/${base}`);
    const linkname =
      pax.linkpath ?? globalPax.linkpath ?? longLink ?? cString(header.subarray(157, 257));
    const realSize = pax.size !== undefined ? Number(pax.size) : size;
    pax = {};
    longName = undefined;
    longLink = undefined;
    yield { name, type, linkname, size: realSize };
    // Hard links, symlinks, devices, dirs and FIFOs carry no data whatever their size field says.
    const hasData = type === "0" || type === "\0" || type === "7";
    if (hasData) {
      await reader.skip(realSize);
      await reader.skip(padding(realSize));
    }
  }
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isUstar(h: Uint8Array): boolean {
  return Buffer.from(h.subarray(257, 262)).toString("latin1") === "ustar";
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(end === -1 ? b : b.subarray(0, end)).toString("utf8");
}

/** Octal (NUL/space terminated) or GNU base-256 for large sizes. */
function parseNumber(field: Uint8Array): number {
  if ((field[0] ?? 0) & 0x80) {
    let n = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = Buffer.from(field)
    .toString("latin1")
    .replace(/[\0 ]+$/g, "")
    .trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const stored = parseNumber(h.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
  return sum === stored;
}

/** pax records: `<len> <key>=<value>\n`. */
function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const buf = Buffer.from(data);
  let i = 0;
  while (i < buf.length) {
    const space = buf.indexOf(0x20, i);
    if (space === -1) break;
    const len = Number.parseInt(buf.toString("latin1", i, space), 10);
    if (!Number.isInteger(len) || len <= 0) throw new Error("tar pax header: bad record length");
    const record = buf.toString("utf8", space + 1, i + len - 1);
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Exact-size reads over a chunk stream. */
class BlockReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #buf: Buffer = Buffer.alloc(0);
  offset = 0;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.#it = chunks[Symbol.asyncIterator]();
  }

  /** `n` bytes, or undefined at end of stream before `n`. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.#buf.length < n) {
      const next = await this.#it.next();
      if (next.done) return undefined;
      this.#buf =
        this.#buf.length === 0 ? Buffer.from(next.value) : Buffer.concat([this.#buf, next.value]);
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    this.offset += n;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0) {
        const next = await this.#it.next();
        if (next.done) throw new Error(`tar stream truncated at byte ${this.offset}`);
        this.#buf = Buffer.from(next.value);
      }
      const take = Math.min(left, this.#buf.length);
      this.#buf = this.#buf.subarray(take);
      left -= take;
      this.offset += take;
    }
  }
}

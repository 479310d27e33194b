/**
 * Text that comes from a guest (agent ERROR frames, EXIT errors, strings in
 * replies) is written by untrusted code: it may be huge, hold terminal escape
 * sequences that rewrite a client's or operator's screen, control bytes that
 * forge log lines, or invalid UTF-8. {@link sanitizeGuestText} makes it safe
 * to put into an error message, an event attribute or a sandbox record.
 */

/** Default bound of a sanitized guest text, UTF-8 bytes (the truncation mark included). */
export const GUEST_TEXT_MAX_BYTES = 1024;

/** Smallest `maxBytes` accepted: room for the truncation mark. */
const MIN_MAX_BYTES = 64;

/** Characters of input examined per byte of output: bounds the work on a 1 MiB input. */
const SCAN_FACTOR = 16;

const ESC = 0x1b;
const BEL = 0x07;
/** C1 controls that open a sequence: CSI; and DCS, SOS, OSC, PM, APC (strings ended by ST). */
const C1_CSI = 0x9b;
const C1_STRING_OPENERS = new Set([0x90, 0x98, 0x9d, 0x9e, 0x9f]);
const C1_ST = 0x9c;
/** Characters after ESC that open a string sequence (DCS `P`, SOS `X`, OSC `]`, PM `^`, APC `_`). */
const ESC_STRING_OPENERS = new Set(["P", "X", "]", "^", "_"]);
/** Bidirectional formatting characters ("Trojan Source"): reorder what a reader sees. */
const BIDI = new Set([
  0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
]);

const encoder = new TextEncoder();

/**
 * The code points in `text` that a terminal or a log reader would interpret
 * (C0, DEL, C1, bidirectional formatting): none are left in what
 * {@link sanitizeGuestText} returns. For tests and assertions.
 */
export function controlCodePoints(text: string): number[] {
  return [...text]
    .map((ch) => ch.codePointAt(0)!)
    .filter((c) => c < 0x20 || (c >= 0x7f && c <= 0x9f) || BIDI.has(c));
}

/**
 * Bounds and cleans guest text for display:
 * - bytes are decoded as UTF-8, invalid sequences become U+FFFD; lone
 *   surrogates in a string too (the result is always valid UTF-8);
 * - ANSI/ECMA-48 escape sequences (CSI such as `ESC[31m`, OSC such as
 *   `ESC]0;title BEL`, DCS/APC/PM/SOS strings, two-character escapes, and
 *   their C1 forms) are removed;
 * - tab, CR, LF and the Unicode line/paragraph separators become a space (one line);
 * - any other C0/C1 control or DEL becomes a visible `\xNN`, a bidirectional
 *   formatting character a visible `\u{NNNN}`;
 * - the result is cut at a character boundary to at most `maxBytes` UTF-8
 *   bytes, ending with `… (truncated, N bytes)` (N = the input's size in bytes)
 *   when anything was cut.
 *
 * Work is linear and bounded: at most `16 × maxBytes` input characters are examined.
 *
 * @param maxBytes bound of the result, UTF-8 bytes (≥ 64). Default {@link GUEST_TEXT_MAX_BYTES}.
 */
export function sanitizeGuestText(
  input: string | Uint8Array,
  maxBytes: number = GUEST_TEXT_MAX_BYTES,
): string {
  if (!Number.isInteger(maxBytes) || maxBytes < MIN_MAX_BYTES) {
    throw new RangeError(`maxBytes must be an integer ≥ ${MIN_MAX_BYTES}, got ${maxBytes}`);
  }
  const scanLimit = maxBytes * SCAN_FACTOR;
  let text: string;
  let inputBytes: number;
  let cut: boolean;
  if (typeof input === "string") {
    inputBytes = Buffer.byteLength(input, "utf8");
    cut = input.length > scanLimit;
    text = (cut ? input.slice(0, scanLimit) : input).toWellFormed();
  } else {
    inputBytes = input.length;
    cut = input.length > scanLimit;
    text = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(
      cut ? input.subarray(0, scanLimit) : input,
    );
  }
  const clean = stripControls(text);
  const cleanBytes = encoder.encode(clean);
  if (!cut && cleanBytes.length <= maxBytes) return clean;
  const mark = `… (truncated, ${inputBytes} bytes)`;
  const room = maxBytes - encoder.encode(mark).length;
  let end = Math.min(room, cleanBytes.length);
  // Back up to a character boundary (not inside a multi-byte sequence).
  while (end > 0 && (cleanBytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(cleanBytes.subarray(0, end)) + mark;
}

/** Removes escape sequences and makes other controls visible (see sanitizeGuestText). */
function stripControls(text: string): string {
  let out = "";
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.codePointAt(i)!;
    const width = c > 0xffff ? 2 : 1;
    if (c === ESC) {
      i = skipEscape(text, i + 1);
    } else if (c === C1_CSI) {
      i = skipCsi(text, i + 1);
    } else if (C1_STRING_OPENERS.has(c)) {
      i = skipString(text, i + 1);
    } else if (c === 0x09 || c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029) {
      out += " ";
      i += 1;
    } else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      out += `\\x${c.toString(16).padStart(2, "0")}`;
      i += 1;
    } else if (BIDI.has(c)) {
      out += `\\u{${c.toString(16)}}`;
      i += 1;
    } else {
      out += text.slice(i, i + width);
      i += width;
    }
  }
  return out;
}

/** After ESC at `i - 1`: the index after the whole sequence. */
function skipEscape(text: string, i: number): number {
  if (i >= text.length) return i;
  const next = text[i]!;
  if (next === "[") return skipCsi(text, i + 1);
  if (ESC_STRING_OPENERS.has(next)) return skipString(text, i + 1);
  // nF escapes: intermediates 0x20–0x2F, then one final character.
  let j = i;
  while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
  const final = text.charCodeAt(j);
  return final >= 0x30 && final <= 0x7e ? j + 1 : j;
}

/** A CSI body from `i`: parameters 0x30–0x3F, intermediates 0x20–0x2F, one final 0x40–0x7E. */
function skipCsi(text: string, i: number): number {
  let j = i;
  while (j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x3f) j++;
  while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
  const final = text.charCodeAt(j);
  return final >= 0x40 && final <= 0x7e ? j + 1 : j;
}

/** A control string from `i` up to and including its terminator: BEL, ESC \ or C1 ST (or the end). */
function skipString(text: string, i: number): number {
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === BEL || c === C1_ST) return j + 1;
    if (c === ESC) return text[j + 1] === "\\" ? j + 2 : j;
  }
  return text.length;
}

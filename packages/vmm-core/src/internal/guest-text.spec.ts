import { describe, expect, it } from "vitest";
import {
  controlCodePoints as controlsIn,
  GUEST_TEXT_MAX_BYTES,
  sanitizeGuestText,
} from "./guest-text.js";

const bytes = (...b: number[]) => Uint8Array.from(b);
const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");

describe("sanitizeGuestText", () => {
  it.each<[string, string | Uint8Array, string]>([
    [
      "plain ASCII",
      "exec failed: No such file or directory",
      "exec failed: No such file or directory",
    ],
    [
      "non-ASCII text",
      "fichier introuvable: ünïcödé 日本 🚀",
      "fichier introuvable: ünïcödé 日本 🚀",
    ],
    ["empty", "", ""],
    ["SGR colour (CSI … m)", "\x1b[31;1mred\x1b[0m text", "red text"],
    ["cursor movement and erase", "a\x1b[2J\x1b[H\x1b[10;20Hb\x1b[?25l", "ab"],
    ["8-bit CSI (U+009B)", "x\u009b31my", "xy"],
    ["OSC title ended by BEL", "\x1b]0;pwned title\x07after", "after"],
    ["OSC 8 hyperlink ended by ESC \\", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"],
    ["DCS string", "\x1bPq#0;2;0;0;0\x1b\\ok", "ok"],
    ["unterminated OSC swallows the rest", "ok\x1b]0;never ends", "ok"],
    ["two-character escape (ESC c: reset)", "\x1bcreset", "reset"],
    ["nF escape (ESC ( B)", "\x1b(Bcharset", "charset"],
    ["lone ESC at the end", "end\x1b", "end"],
    ["newlines, CR and tabs become spaces", "line1\nline2\r\n\tx", "line1 line2   x"],
    ["forged log line via CR", "ok\rERROR fake", "ok ERROR fake"],
    ["other C0 controls made visible", "a\x00b\x07c\x08d", "a\\x00b\\x07c\\x08d"],
    ["DEL and C1 made visible", "a\x7fb\u0085c", "a\\x7fb\\x85c"],
    ["bidi override made visible", "user\u202Egnp.exe", "user\\u{202e}gnp.exe"],
    ["line separator", "a\u2028b", "a b"],
    ["invalid UTF-8 bytes", bytes(0x61, 0xff, 0xfe, 0x62, 0xc3), "a\ufffd\ufffdb\ufffd"],
    ["overlong encoding of '/'", bytes(0xc0, 0xaf), "\ufffd\ufffd"],
    ["UTF-8 bytes with escapes", new TextEncoder().encode("\x1b[1mbold\x1b[0m é"), "bold é"],
    ["lone surrogate in a string", "a\ud800b", "a\ufffdb"],
  ])("%s", (_name, input, want) => {
    expect(sanitizeGuestText(input)).toBe(want);
  });

  it.each([
    ["ASCII", "x".repeat(5000)],
    ["4-byte characters", "🚀".repeat(2000)],
    ["bytes", new Uint8Array(300_000).fill(0x41)],
  ])("cuts %s at a character boundary within the bound and says how big it was", (_n, input) => {
    const out = sanitizeGuestText(input, 200);
    const size = typeof input === "string" ? utf8Length(input) : input.length;
    expect(utf8Length(out)).toBeLessThanOrEqual(200);
    expect(out.endsWith(`… (truncated, ${size} bytes)`)).toBe(true);
    expect(out).not.toContain("\ufffd");
  });

  it("bounds 262 KB of escapes and controls to the default bound, nothing interpretable left", () => {
    const junk = "\x1b[2J\x1b]0;t\x07\x00\x07\r\x1b[38;5;196mERR\x9b1m\u202e".repeat(10_000);
    const cpu0 = process.cpuUsage();
    const out = sanitizeGuestText(junk);
    const cpu = process.cpuUsage(cpu0);
    expect(utf8Length(out)).toBeLessThanOrEqual(GUEST_TEXT_MAX_BYTES);
    expect(controlsIn(out)).toEqual([]);
    expect(out).toMatch(/… \(truncated, \d+ bytes\)$/);
    expect((cpu.user + cpu.system) / 1e3).toBeLessThan(200);
  });

  it("text that only shrinks below the bound after stripping is not marked truncated", () => {
    const input = `${"\x1b[0m".repeat(300)}short`;
    expect(utf8Length(input)).toBeGreaterThan(GUEST_TEXT_MAX_BYTES);
    expect(sanitizeGuestText(input)).toBe("short");
  });

  it("rejects a bound too small for the truncation mark", () => {
    expect(() => sanitizeGuestText("x", 10)).toThrow(RangeError);
  });
});

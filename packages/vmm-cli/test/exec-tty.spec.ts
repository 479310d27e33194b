import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until, vmmBin } from "./harness.js";
import { type InProcessDaemon, startInProcessDaemon } from "./in-process-daemon.js";

/** Runs a shell command line on a pseudo-terminal with util-linux `script`; stdin stays open. */
function onPty(cmdline: string, socket: string) {
  const child = spawn("script", ["-qfec", cmdline, "/dev/null"], {
    env: { ...process.env, VMM_SOCKET: socket },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => {
    out += b.toString("utf8");
  });
  child.stderr.on("data", (b: Buffer) => {
    out += b.toString("utf8");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const done = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
  return { child, done, output: () => out };
}

// The stty snapshot taken before vmm starts is compared with the one after it
// exits: equal means raw mode was undone.
const restoredCheck = `rc=$?; after=$(stty -g); [ "$before" = "$after" ] && echo TERMINAL-RESTORED; exit $rc`;

/**
 * The guest side of the terminal tests, a shell script run by the guest agent on a
 * pty: prints the size it starts with (stty size, "ROWS COLS"), writes MARKER once
 * its traps are set, prints the new size and exits 7 on the first SIGWINCH, and
 * exits 130 when the terminal's Ctrl-C (0x03 → SIGINT by the line discipline) stops it.
 */
const ttyProbe = (marker: string) => [
  "sh",
  "-c",
  [
    'echo "size $(stty size)"',
    `trap 'echo "resize $(stty size)"; exit 7' WINCH`,
    "trap 'echo ^C-seen; exit 130' INT",
    `touch ${marker}`,
    "while :; do sleep 0.05; done",
  ].join("; "),
];

/** The command line of `vmm exec -t -i tty-0001 -- <probe>`, quoted for sh. */
const probeCmdline = (marker: string) =>
  `node ${vmmBin} exec -t -i tty-0001 -- ${ttyProbe(marker)
    .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(" ")}`;

describe("vmm exec -t on a pseudo-terminal", () => {
  let d: InProcessDaemon;
  beforeAll(async () => {
    d = await startInProcessDaemon();
    await d.createReady("tty-0001");
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("sends the window size at start and a resize on SIGWINCH, and restores the terminal", async () => {
    const marker = join(d.scratch, "started-resize");
    // vmm runs in the background (same process group: no job control), so the
    // shell can change the pty's size, which makes the kernel send SIGWINCH.
    const cmdline = [
      "stty cols 120 rows 40",
      "before=$(stty -g)",
      "exec 3<&0",
      `${probeCmdline(marker)} 0<&3 3<&- & pid=$!`,
      `while [ ! -f ${marker} ]; do sleep 0.05; done`,
      "stty cols 100",
      "wait $pid",
      restoredCheck,
    ].join("; ");
    const r = await onPty(cmdline, d.socket).done;
    // The guest's terminal had the local one's size at start, and followed the resize.
    expect(r.out).toContain("size 40 120");
    expect(r.out).toContain("resize 40 100");
    expect(r.out).toContain("TERMINAL-RESTORED");
    expect(r.code).toBe(7);
  });

  it("forwards Ctrl-C as the byte 0x03 in raw mode, and restores the terminal", async () => {
    const marker = join(d.scratch, "started-ctrlc");
    const cmdline = [
      "stty cols 80 rows 24",
      "before=$(stty -g)",
      probeCmdline(marker),
      restoredCheck,
    ].join("; ");
    const pty = onPty(cmdline, d.socket);
    await until(() => existsSync(marker), "the exec session to start", 15_000);
    pty.child.stdin.write("\x03");
    const r = await pty.done;
    // Raw mode sent 0x03 as a byte; the guest's terminal turned it into SIGINT.
    expect(r.out).toContain("^C-seen");
    expect(r.out).toContain("TERMINAL-RESTORED");
    expect(r.code).toBe(130);
  });

  it("create --wait draws a spinner with elapsed time when stderr is a terminal", async () => {
    const r = await onPty(`node ${vmmBin} create --id tty-spin --wait`, d.socket).done;
    expect(r.code).toBe(0);
    const clear = "\r\x1b[K"; // carriage return + erase line
    expect(r.out.split(clear).some((frame) => /^\S+ tty-spin starting \d+\.\ds$/.test(frame))).toBe(
      true,
    );
    expect(r.out).toContain(`${clear}tty-spin`); // the line is cleared before the id is printed
    await d.sandboxes.remove({ id: "tty-spin" });
  });

  it("restores the terminal when the call fails", async () => {
    const cmdline = [
      "before=$(stty -g)",
      `node ${vmmBin} exec -t -i tty-nope -- sh`,
      restoredCheck,
    ].join("; ");
    const r = await onPty(cmdline, d.socket).done;
    expect(r.out).toContain('NOT_FOUND: no sandbox matches "tty-nope"');
    expect(r.out).toContain("TERMINAL-RESTORED");
    expect(r.code).toBe(125);
  });
});

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { e2e, startTestDaemon, type TestDaemon, until, vmmBin } from "./harness.js";

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

describe.skipIf(e2e)("vmm exec -t on a pseudo-terminal", () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startTestDaemon();
    d.fake!.seed("tty-0001", "ready");
  });
  afterAll(async () => {
    await d?.close();
  });

  it("sends the window size at start and a resize on SIGWINCH, and restores the terminal", async () => {
    const marker = join(d.fake!.dir, "started-resize");
    // vmm runs in the background (same process group: no job control), so the
    // shell can change the pty's size, which makes the kernel send SIGWINCH.
    const cmdline = [
      "stty cols 120 rows 40",
      "before=$(stty -g)",
      "exec 3<&0",
      `node ${vmmBin} exec -t -i tty-0001 -- tty-probe ${marker} 0<&3 3<&- & pid=$!`,
      `while [ ! -f ${marker} ]; do sleep 0.05; done`,
      "stty cols 100",
      "wait $pid",
      restoredCheck,
    ].join("; ");
    const r = await onPty(cmdline, d.socket).done;
    expect(r.out).toContain("size 120x40");
    expect(r.out).toContain("resize 100x40");
    expect(r.out).toContain("TERMINAL-RESTORED");
    expect(r.code).toBe(7);
    const init = d.fake!.record.execInits.at(-1)!;
    expect(init).toMatchObject({ id: "tty-0001", tty: true, ttySize: { width: 120, height: 40 } });
    expect(d.fake!.record.resizes.at(-1)).toMatchObject({ width: 100, height: 40 });
  });

  it("forwards Ctrl-C as the byte 0x03 in raw mode, and restores the terminal", async () => {
    const marker = join(d.fake!.dir, "started-ctrlc");
    const cmdline = [
      "stty cols 80 rows 24",
      "before=$(stty -g)",
      `node ${vmmBin} exec -t -i tty-0001 -- tty-probe ${marker}`,
      restoredCheck,
    ].join("; ");
    const pty = onPty(cmdline, d.socket);
    await until(() => existsSync(marker), "the exec session to start", 15_000);
    pty.child.stdin.write("\x03");
    const r = await pty.done;
    expect(r.out).toContain("^C");
    expect(r.out).toContain("TERMINAL-RESTORED");
    expect(r.code).toBe(130);
    expect(Buffer.concat(d.fake!.record.execStdin).includes(3)).toBe(true);
  });

  it("create --wait draws a spinner with elapsed time when stderr is a terminal", async () => {
    const r = await onPty(`node ${vmmBin} create --id tty-spin --wait`, d.socket).done;
    expect(r.code).toBe(0);
    const clear = "\r\x1b[K"; // carriage return + erase line
    expect(r.out.split(clear).some((frame) => /^\S+ tty-spin starting \d+\.\ds$/.test(frame))).toBe(
      true,
    );
    expect(r.out).toContain(`${clear}tty-spin`); // the line is cleared before the id is printed
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

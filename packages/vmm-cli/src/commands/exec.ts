import type { MessageInitShape } from "@bufbuild/protobuf";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import type { ExecInputSchema } from "@vmm/proto";
import type { OutputStream } from "../command.js";
import { defineCommand } from "../command.js";
import { parseDurationSeconds, parseKeyValues } from "../flags.js";
import { resolveSandboxId } from "../resolve.js";
import { copyProcessOutput, processFlags } from "./run.js";

type ExecInputInit = MessageInitShape<typeof ExecInputSchema>;

/** `vmm exec ID [-t] [-i] -- CMD...`: an interactive process in a sandbox. */
export const execCommand = defineCommand({
  names: ["exec"],
  summary: "Run an interactive process in a sandbox (stdin, terminal)",
  usage: "exec [-i] [-t] [flags] ID -- CMD [ARG...]",
  description:
    "-i forwards stdin (its end closes the process's stdin). -t gives the process a terminal; when\n" +
    "stdin is a terminal too, it is put in raw mode (restored on exit), keystrokes are forwarded\n" +
    "(so -t implies -i there; Ctrl-C reaches the process as byte 0x03) and window size changes are\n" +
    "sent as resizes. Without a terminal, Ctrl-C ends the call and the daemon kills the process.\n" +
    "vmm exits with the process's status; its own failures exit 125, --timeout 124, Ctrl-C 130.",
  flags: {
    interactive: { type: "boolean", short: "i", description: "forward stdin" },
    ...processFlags,
  },
  args: { positionals: ["ID"], rest: "required", complete: "sandbox" },
  commandStatus: true,
  async handler(ctx, { values, positionals, rest }) {
    const env = parseKeyValues("env", values.env);
    const timeoutSeconds =
      values.timeout === undefined ? 0 : parseDurationSeconds("timeout", values.timeout);
    const id = await resolveSandboxId(ctx.clients(), positionals[0]!, ctx.signal);
    const { stdin, stdout, stderr } = ctx.io;
    const raw = values.tty && stdin.isTTY === true && typeof stdin.setRawMode === "function";
    const forwardStdin = values.interactive || raw;
    const terminal = stdout.isTTY ? stdout : stderr.isTTY ? stderr : undefined;
    const size = () => terminalSize(terminal);

    const input = createWritableIterable<ExecInputInit>();
    // Resolves once the transport took the message (backpressure for stdin). After
    // the call ended the iterable is closed and writes reject: nothing to do then.
    const send = (msg: ExecInputInit): Promise<void> => input.write(msg).catch(() => {});
    const cleanups: (() => void)[] = [];
    try {
      const initSize = values.tty ? size() : undefined;
      void send({
        payload: {
          case: "init",
          value: {
            id,
            cmd: [...(rest ?? [])],
            env,
            workingDir: values.workdir ?? "",
            user: values.user ?? "",
            tty: values.tty,
            timeoutSeconds,
            tag: values.tag ?? "",
            ...(initSize ? { ttySize: initSize } : {}),
          },
        },
      });
      if (raw) {
        stdin.setRawMode!(true);
        cleanups.push(() => stdin.setRawMode!(false));
      }
      if (values.tty && terminal) {
        cleanups.push(
          ctx.io.onSignal("SIGWINCH", () => {
            const s = size();
            if (s) void send({ payload: { case: "resize", value: s } });
          }),
        );
      }
      const call = ctx.clients().sandbox.exec(input, { signal: ctx.signal });
      if (forwardStdin) pumpStdin(ctx.io.stdin, send);
      // Without -i the process reads EOF at once, as under `vmm run` (and `docker exec`):
      // left open, a process that reads stdin would wait forever. A terminal keeps its
      // input open (an EOF there would be a hangup).
      else if (!values.tty) void send({ payload: { case: "stdin", value: new Uint8Array(0) } });
      return await copyProcessOutput(ctx, call);
    } finally {
      for (const undo of cleanups.reverse()) undo();
      input.close();
      stdin.pause();
    }
  },
});

/** The terminal's size in cells, or undefined without a terminal. */
function terminalSize(
  out: OutputStream | undefined,
): { width: number; height: number } | undefined {
  if (!out?.columns || !out.rows) return undefined;
  return { width: out.columns, height: out.rows };
}

/** Forwards stdin chunks; its end is sent as an empty chunk (closes the process's stdin). */
function pumpStdin(
  stdin: AsyncIterable<Buffer | string>,
  send: (msg: ExecInputInit) => Promise<void>,
): void {
  (async () => {
    for await (const chunk of stdin) {
      const value = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      if (value.length > 0) await send({ payload: { case: "stdin", value } });
    }
    await send({ payload: { case: "stdin", value: new Uint8Array(0) } });
  })().catch(() => {
    // stdin errors (e.g. EIO when the terminal goes away) end forwarding only.
  });
}

// The `vmm` binary: wires the process into runCli, prints, exits.
import { runCli } from "./cli.js";
import type { Io, OutputStream } from "./command.js";

let interrupts = 0;
const io: Io = {
  get stdin() {
    return process.stdin;
  },
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  now: () => Date.now(),
  onSignal(signal, listener) {
    process.on(signal, listener);
    return () => process.off(signal, listener);
  },
};

// A second Ctrl-C exits at once, whatever the command is doing.
process.on("SIGINT", () => {
  if (++interrupts >= 2) process.exit(130);
});
// `vmm list | head`: a closed pipe is not an error worth a stack trace.
for (const out of [process.stdout, process.stderr]) {
  out.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}

function write(out: OutputStream, text: string): Promise<void> {
  return new Promise((resolve) => out.write(text, () => resolve()));
}

// `pnpm vmm -- list` hands us the "--" too; a leading "--" means nothing else to vmm.
const argv = process.argv.slice(2);
if (argv[0] === "--") argv.shift();
const result = await runCli(argv, io);
if (result.stdout) await write(process.stdout, result.stdout);
if (result.stderr) await write(process.stderr, result.stderr);
// The HTTP/2 session would keep the process alive: exit explicitly.
process.exit(result.exitCode);

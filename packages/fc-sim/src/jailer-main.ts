// jailer-sim entry point: a stand-in for Firecracker's `jailer` (see README.md). NO chroot, NO isolation.
import { runJailer } from "./jailer.js";

runJailer(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`jailer-sim: internal error: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});

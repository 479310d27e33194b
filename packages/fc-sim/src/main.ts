// fc-sim entry point: a simulated `firecracker` binary (see README.md). NO ISOLATION.
import { runSimulator } from "./simulator.js";

runSimulator(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`fc-sim: internal error: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

/** Builds the binaries tests run (guest agent, bundled fc-sim, daemon, CLI) once per test run. */
export default function setup(): void {
  execFileSync("node", [resolve(root, "scripts/build.mjs")], { stdio: "inherit", cwd: root });
  if (existsSync(resolve(root, "guest/agent/Makefile"))) {
    execFileSync("make", ["-s", "-C", resolve(root, "guest/agent"), "all"], { stdio: "inherit" });
  }
}

import { execFileSync } from "node:child_process";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

/**
 * Once per test run: bundles the executables (daemon, CLI, fc-sim), builds the
 * guest agent, and prepares the dev images (a guest kernel and a rootfs with
 * the agent) that daemon tests boot with fc-sim.
 */
export default function setup(): void {
  execFileSync("bash", [resolve(root, "scripts/dev-images.sh")], { stdio: "inherit", cwd: root });
}

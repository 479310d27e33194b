import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");

/**
 * Once per test run: bundles the executables (daemon, CLI, fc-sim), builds the
 * guest agent, and prepares the dev images (a guest kernel and a rootfs with
 * the agent) that daemon tests boot with fc-sim.
 */
export default function setup(): () => void {
  killOrphanGuests();
  removeDeadSimulatorDirs();
  execFileSync("bash", [resolve(root, "scripts/dev-images.sh")], { stdio: "inherit", cwd: root });
  return removeDeadSimulatorDirs;
}

/**
 * fc-sim keeps its guest sockets in /tmp/fcsim-<pid> and removes it on exit;
 * tests that SIGKILL a simulator (crash cases) leave it behind.
 */
function removeDeadSimulatorDirs(): void {
  for (const name of readdirSync("/tmp")) {
    const pid = /^fcsim-(\d+)$/.exec(name)?.[1];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    rmSync(`/tmp/${name}`, { recursive: true, force: true });
  }
}

/**
 * Simulated guests (agents started by fc-sim) whose fc-sim is gone are
 * leftovers of an earlier, interrupted run on this machine: their pid-named
 * sockets would be mistaken for this run's. Agents of this run always have a
 * live fc-sim parent; these have been re-parented to init.
 */
function killOrphanGuests(): void {
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("--unix-dir\0/tmp/fcsim-")) continue;
      const ppid = /^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      if (ppid === "1") {
        process.kill(Number(pid), "SIGKILL");
        process.stderr.write(
          `global setup: killed orphaned simulated guest ${pid} from an earlier run\n`,
        );
      }
    } catch {
      // Gone meanwhile.
    }
  }
}

import { readFile } from "node:fs/promises";
import type { ExitStatus } from "../launcher.js";

/** `starttime` of a live, non-zombie process, or undefined if it is gone. */
export async function readStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  // Fields after the parenthesised comm: state is field 3, starttime field 22.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (rest[0] === "Z" || rest[0] === "X") return undefined;
  return rest[19];
}

/**
 * Watches a process that is not our child (daemonized / new-pid-ns Firecracker, NOTES.md §1.2) by
 * polling `/proc/<pid>/stat` every `intervalMs`: gone, a zombie, or a different start time (pid
 * reused) all count as exited. Polling rather than pidfd: Node exposes no pidfd_open. Exit code and
 * signal are unknowable for a non-child, so both are null. `stop()` ends the polling.
 */
export function watchPid(
  pid: number,
  startTime: string,
  intervalMs = 20,
): { exited: Promise<ExitStatus>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    const tick = () => {
      readStartTime(pid).then(
        (st) => {
          if (st !== startTime) {
            resolve({ code: null, signal: null });
            return;
          }
          if (!stopped) timer = setTimeout(tick, intervalMs);
        },
        () => resolve({ code: null, signal: null }),
      );
    };
    tick();
  });
  return {
    exited,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

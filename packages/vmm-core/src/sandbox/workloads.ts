import { constants as osConstants } from "node:os";
import type { AgentClient, AgentProcess } from "../agent/index.js";
import { FailedPreconditionError } from "../errors.js";
import { withImageDefaults } from "../images/image-defaults.js";
import type { SandboxContext } from "./context.js";
import { type TrackedProcess, validateTag } from "./process-table.js";
import { validateProcessSpec } from "./request-limits.js";
import type { Sandbox } from "./sandbox.js";
import type { ProcessOutput, ProcessSession, ProcessSpec } from "./types.js";

/**
 * Processes in a sandbox's guest (Run, Exec, the initial workload), through
 * its agent. A sandbox is `running` while any workload runs and `ready`
 * again (event `idle`) when the last one ends. Each process is in the
 * sandbox's ProcessTable from its STARTED until its EXIT is read or its
 * session ends (ListProcesses, SignalProcess: processes.ts).
 */
export class Workloads {
  constructor(
    private readonly ctx: SandboxContext,
    /** Brings a paused sandbox back (auto-resume). */
    private readonly resume: (s: Sandbox) => Promise<void>,
  ) {}

  /** Runs a command to completion; the sandbox is `running` meanwhile (Run while running fails). */
  run(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.start(this.ctx.registry.get(id), spec, signal, { exclusive: true, stdin: false });
  }

  /**
   * Starts an interactive process. Several Exec sessions may run at once (and
   * alongside a Run); the sandbox is `running` while any workload runs.
   */
  exec(id: string, spec: ProcessSpec, signal: AbortSignal): Promise<ProcessSession> {
    return this.start(this.ctx.registry.get(id), spec, signal, { exclusive: false, stdin: true });
  }

  /** Runs the sandbox's initial workload (Create's `workload`) until it exits or the sandbox ends. */
  async runInitial(s: Sandbox, spec: ProcessSpec): Promise<void> {
    const ac = new AbortController();
    s.lifetime.signal.addEventListener("abort", () => ac.abort(), { once: true });
    try {
      const session = await this.start(s, spec, ac.signal, { exclusive: true, stdin: false });
      for await (const out of session.output) {
        if (out.kind === "exit") s.log.info({ exitCode: out.exitCode }, "initial workload exited");
      }
    } catch (err) {
      s.log.warn({ err }, "initial workload failed");
    }
  }

  private async start(
    s: Sandbox,
    spec: ProcessSpec,
    signal: AbortSignal,
    mode: { exclusive: boolean; stdin: boolean },
  ): Promise<ProcessSession> {
    // The sandbox's image config fills what the request left out (docs/images.md).
    spec = withImageDefaults(spec, s.spec.image?.defaults);
    validateProcessSpec(spec);
    if (spec.tag !== undefined) validateTag(spec.tag);
    await this.awake(s);
    const agent = this.agentOf(s);
    const p = s.phase;
    if (p.kind === "checkpointing") {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is being checkpointed (paused); retry when it is done`,
      );
    }
    if (p.kind === "running" && mode.exclusive) {
      throw new FailedPreconditionError(
        `sandbox ${s.id} is running a workload; Run needs state ready`,
      );
    }
    if (p.kind !== "ready" && p.kind !== "running") {
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; it must be ready`);
    }
    // Claimed before the agent is asked (no await in between): two concurrent starts cannot both take it.
    if (spec.tag !== undefined) s.processes.claimTag(spec.tag);
    let proc: AgentProcess;
    try {
      proc = await agent.run({
        argv: spec.cmd,
        env: spec.env,
        ...(spec.workingDir !== undefined && { cwd: spec.workingDir }),
        ...(spec.user !== undefined && { user: spec.user }),
        ...(spec.tty && { tty: spec.ttySize ?? { cols: 80, rows: 24 } }),
        ...(spec.timeoutSeconds > 0 && { timeoutMs: spec.timeoutSeconds * 1000 }),
        stdin: mode.stdin,
        signal,
      });
    } catch (err) {
      if (spec.tag !== undefined) s.processes.releaseTag(spec.tag);
      throw err;
    }
    return this.track(s, proc, spec, signal);
  }

  /**
   * Counts `proc` as a workload of `s` and lists it in `s.processes` until
   * its output ends or the caller goes away.
   */
  private async track(
    s: Sandbox,
    proc: AgentProcess,
    spec: ProcessSpec,
    signal: AbortSignal,
  ): Promise<ProcessSession> {
    const listed = trackedProcess(proc, spec);
    if (listed) s.processes.add(listed);
    else if (spec.tag !== undefined) s.processes.releaseTag(spec.tag); // it never started
    const unlist = () => {
      if (listed) s.processes.delete(listed);
    };
    try {
      await this.began(s);
    } catch (err) {
      unlist();
      proc.close();
      throw err;
    }
    let finished = false;
    const finish = async (exitCode: number | undefined) => {
      if (finished) return;
      finished = true;
      unlist();
      if (exitCode !== undefined) s.recordExit(exitCode);
      await this.ended(s, exitCode);
    };
    signal.addEventListener("abort", () => void finish(undefined), { once: true });
    const output = async function* (): AsyncGenerator<ProcessOutput> {
      let exitCode: number | undefined;
      try {
        for await (const ev of proc) {
          if ("exit" in ev) {
            unlist(); // the agent reported EXIT: ListProcesses no longer shows it
            const e = ev.exit;
            exitCode = e.code ?? (e.signal !== undefined ? 128 + e.signal : 255);
            yield {
              kind: "exit",
              exitCode,
              signal: e.signalName ?? (e.signal !== undefined ? signalName(e.signal) : undefined),
              timedOut: e.timedOut,
            };
          } else {
            yield { kind: ev.stream, data: ev.data };
          }
        }
      } finally {
        proc.close();
        await finish(exitCode);
      }
    };
    return {
      output: output(),
      writeStdin: (data) => proc.writeStdin(data),
      closeStdin: () => proc.closeStdin(),
      resize: (cols, rows) => proc.resize(cols, rows),
    };
  }

  private async began(s: Sandbox): Promise<void> {
    const p = s.phase;
    if (p.kind === "running") s.enter({ kind: "running", workloads: p.workloads + 1 });
    else if (p.kind === "ready") {
      await this.ctx.registry.transition(s, { kind: "running", workloads: 1 }, {});
    }
  }

  private async ended(s: Sandbox, exitCode: number | undefined): Promise<void> {
    const p = s.phase;
    if (p.kind !== "running") return; // stopped or failed meanwhile: nothing to count
    if (p.workloads > 1) {
      s.enter({ kind: "running", workloads: p.workloads - 1 });
      return;
    }
    await this.ctx.registry.transition(
      s,
      { kind: "ready" },
      exitCode === undefined ? {} : { exit_code: String(exitCode) },
      "idle",
    );
  }

  /**
   * Waits for a Pause or Resume under way; resumes a paused sandbox when
   * `lifecycle.auto_resume` is on, and says how otherwise.
   * @private for SandboxFiles (same rules as Run and Exec).
   */
  async awake(s: Sandbox): Promise<void> {
    for (;;) {
      const p = s.phase;
      if (p.kind === "pausing" || p.kind === "resuming") await p.done;
      else if (p.kind !== "paused") return;
      else if (this.ctx.opts.lifecycle?.autoResume ?? true) await this.resume(s);
      else {
        throw new FailedPreconditionError(`sandbox ${s.id} is paused; it must be ready`, {
          hint: "Resume it first (lifecycle.auto_resume is off in this daemon)",
        });
      }
    }
  }

  /** The sandbox's agent, or why there is none. @private for SandboxFiles. */
  agentOf(s: Sandbox): AgentClient {
    if (this.ctx.opts.agent.readiness === "vmm") {
      throw new FailedPreconditionError(`sandbox ${s.id} has no agent (agent.readiness = "vmm")`, {
        hint: 'use a rootfs with the vmm agent and agent.readiness = "agent"',
      });
    }
    if (!s.agent)
      throw new FailedPreconditionError(`sandbox ${s.id} is ${s.state}; it must be ready`);
    return s.agent;
  }
}

/** The ProcessTable entry of a started process; undefined when it could not start (no pid). */
function trackedProcess(proc: AgentProcess, spec: ProcessSpec): TrackedProcess | undefined {
  if (proc.pid === undefined) return undefined;
  return {
    pid: proc.pid,
    cmd: spec.cmd,
    tag: spec.tag,
    startedAt: new Date(),
    tty: spec.tty,
    kill: (signal) => proc.kill(signal),
  };
}

function signalName(n: number): string | undefined {
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0];
}

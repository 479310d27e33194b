import { setTimeout as sleep } from "node:timers/promises";
import { CreateSandboxResponseSchema, type SandboxEvent } from "@vmm/proto";
import type { CommandContext } from "../command.js";
import { defineCommand } from "../command.js";
import { labelFlag, outputFlag } from "../common-flags.js";
import { SandboxFailedError, UsageError } from "../errors.js";
import { parseCount, parseDurationSeconds, parseKeyValues, parseMemoryMib } from "../flags.js";
import { parseOutputFormat, renderMessage } from "../output.js";
import { createSpinner } from "../spinner.js";
import { policyFlags, policyFromFlags } from "./network.js";

/** `vmm create [-- cmd...]`: create a sandbox, optionally wait until it has booted. */
export const createCommand = defineCommand({
  names: ["create"],
  summary: "Create a sandbox (boots in the background; --wait to wait for it)",
  usage: "create [flags] [-- CMD [ARG...]]",
  description:
    "Prints the new sandbox's id (-o json|yaml: the CreateSandbox response). The words after --\n" +
    "are the initial workload, started once the sandbox is ready. With --wait, waits for the\n" +
    "sandbox to become ready (a spinner on stderr when it is a terminal) and exits 1 if it failed.\n\n" +
    "Example:\n  vmm create --vcpus 2 --memory 1G --label team=ci --ttl 1h --wait -- python3 -m http.server\n" +
    "  vmm create --image docker.io/library/python:3.12-slim --wait",
  flags: {
    id: { type: "string", value: "ID", description: "choose the id (makes create idempotent)" },
    vcpus: { type: "string", value: "N", description: "virtual CPUs (default: the daemon's)" },
    memory: {
      type: "string",
      value: "SIZE",
      description: "guest memory: MiB, or with M/G suffix (default: the daemon's)",
    },
    kernel: {
      type: "string",
      value: "PATH",
      description: "guest kernel image (path or name under the images dir)",
    },
    rootfs: {
      type: "string",
      value: "PATH",
      description: "base root filesystem image (path or name)",
    },
    image: {
      type: "string",
      value: "REF",
      description:
        "boot an OCI image instead of a rootfs (pulled on first use; its env, workdir, user and command are the defaults)",
    },
    "boot-args": { type: "string", value: "ARGS", description: "kernel command line" },
    label: labelFlag("add a label"),
    ttl: {
      type: "string",
      value: "DURATION",
      description: "remove the sandbox this long after creation (e.g. 30m)",
    },
    "auto-pause": {
      type: "string",
      value: "DURATION",
      description: "pause the sandbox after this long without a run or exec (e.g. 10m)",
    },
    network: {
      type: "string",
      value: "MODE",
      description: "networking mode (default tap)",
      choices: ["tap", "none"],
    },
    env: {
      type: "string",
      multiple: true,
      value: "K=V",
      description: "environment of the initial workload",
    },
    workdir: {
      type: "string",
      value: "DIR",
      description: "working directory of the initial workload",
    },
    user: {
      type: "string",
      value: "USER",
      description: "user of the initial workload (name or uid)",
    },
    ...policyFlags,
    wait: { type: "boolean", description: "wait until the sandbox is ready; exit 1 if it fails" },
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: [], rest: "optional" },
  async handler(ctx, { values, rest }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const cmd = rest ?? [];
    if (values.image !== undefined && values.rootfs !== undefined) {
      throw new UsageError(
        "--image and --rootfs are exclusive: the image's rootfs is built from its layers",
      );
    }
    // With --image, --env/--workdir/--user may apply to the image's own command.
    if (
      (values.env.length > 0 || values.workdir !== undefined || values.user !== undefined) &&
      cmd.length === 0 &&
      values.image === undefined
    ) {
      throw new UsageError(
        "--env, --workdir and --user apply to the initial workload: give it after --",
      );
    }
    const req = {
      id: values.id ?? "",
      labels: parseKeyValues("label", values.label),
      kernel: values.kernel ?? "",
      rootfs: values.rootfs ?? "",
      image: values.image ?? "",
      bootArgs: values["boot-args"] ?? "",
      limits: {
        vcpus: values.vcpus === undefined ? 0 : parseCount("vcpus", values.vcpus),
        memoryMib:
          values.memory === undefined ? 0n : BigInt(parseMemoryMib("memory", values.memory)),
      },
      cmd: [...cmd],
      env: parseKeyValues("env", values.env),
      workingDir: values.workdir ?? "",
      user: values.user ?? "",
      ttlSeconds: values.ttl === undefined ? 0 : parseDurationSeconds("ttl", values.ttl),
      autoPauseSeconds:
        values["auto-pause"] === undefined
          ? 0
          : parseDurationSeconds("auto-pause", values["auto-pause"]),
      ...(values.network !== undefined ? { network: { mode: checkNetwork(values.network) } } : {}),
      networkPolicy: policyFromFlags(values),
    };
    const res = await ctx.clients().sandbox.create(req, { signal: ctx.signal });
    if (values.wait) {
      const spinner = createSpinner(ctx.io.stderr, `${res.id} starting`, () => ctx.io.now());
      try {
        res.state = await waitUntilBooted(ctx, res.id);
      } finally {
        spinner.stop();
      }
    }
    if (format === "json" || format === "yaml") {
      return { exitCode: 0, stdout: renderMessage(format, CreateSandboxResponseSchema, res) };
    }
    return { exitCode: 0, stdout: `${res.id}\n` };
  },
});

function checkNetwork(mode: string): string {
  if (mode !== "tap" && mode !== "none")
    throw new UsageError(`--network wants tap or none, got "${mode}"`);
  return mode;
}

/** How often the wait re-checks with Inspect, in case an event was missed. */
const pollIntervalMs = 2000;

/**
 * Waits for a sandbox to finish booting. Subscribes to its events first, then
 * inspects it (so a transition between the two cannot be missed), then waits
 * for an event, re-inspecting every couple of seconds as a safety net.
 * @returns the state reached: "ready" (or "running" when the initial workload already started)
 * @throws SandboxFailedError when it failed, stopped or was removed instead
 */
export async function waitUntilBooted(ctx: CommandContext, id: string): Promise<string> {
  const done = new AbortController();
  const signal = AbortSignal.any([ctx.signal, done.signal]);
  const client = ctx.clients().sandbox;
  // Connect sends the request when the call is made; asking for the first
  // message right away keeps a rejection from going unhandled.
  const events = client.events({ id }, { signal })[Symbol.asyncIterator]();
  let next = events.next();
  next.catch(() => {});
  try {
    const info = await client.inspect({ id }, { signal });
    let outcome = stateOutcome(info.state, info.error);
    while (outcome === undefined) {
      const tick = sleep(pollIntervalMs, "tick" as const, { signal }).catch(() => "tick" as const);
      const got = await Promise.race([next, tick]);
      if (got === "tick") {
        const again = await client.inspect({ id }, { signal });
        outcome = stateOutcome(again.state, again.error);
        continue;
      }
      if (got.done) {
        // The daemon ended the stream (shutting down?): fall back to one last look.
        const again = await client.inspect({ id }, { signal });
        outcome = stateOutcome(again.state, again.error) ?? {
          fail: `event stream ended while ${id} was ${again.state}`,
        };
        break;
      }
      outcome = eventOutcome(got.value);
      next = events.next();
      next.catch(() => {});
    }
    if ("fail" in outcome)
      throw new SandboxFailedError(
        `sandbox ${id} did not boot: ${outcome.fail}`,
        `see 'vmm inspect ${id}'`,
      );
    return outcome.state;
  } finally {
    done.abort();
  }
}

type Outcome = { state: string } | { fail: string };

function stateOutcome(state: string, error: string): Outcome | undefined {
  if (state === "ready" || state === "running") return { state };
  if (state === "failed") return { fail: error || "failed" };
  if (state === "stopping" || state === "stopped") return { fail: `it is ${state}` };
  return undefined;
}

function eventOutcome(ev: SandboxEvent): Outcome | undefined {
  switch (ev.action) {
    case "ready":
    case "running":
      return { state: ev.action };
    case "failed":
      return { fail: ev.attributes.error || "failed" };
    case "stopping":
    case "stopped":
    case "removed":
      return { fail: `it was ${ev.action}` };
    default:
      return undefined;
  }
}

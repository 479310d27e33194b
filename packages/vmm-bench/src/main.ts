import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  type BenchOptions,
  compareCommand,
  compareRestoreCommand,
  filesCommand,
  goldenCommand,
  lifecycleCommand,
  policyCommand,
  rawCommand,
  restoreCommand,
  runLatencyCommand,
  startupCommand,
  UnimplementedRpcError,
} from "./commands.js";
import { apiLoadCommand, idleRssCommand, restartCommand } from "./fleet.js";
import { DEV_IMAGES_DIR, isSimulated, resolveFirecracker } from "./host.js";
import { imageCreateCommand } from "./image-create.js";
import { imagePullCommand } from "./image-pull.js";
import { metricsCommand } from "./metrics-scrape.js";
import { proxyCommand } from "./proxy-bench.js";
import { type BenchReport, formatRatios, formatTable } from "./report.js";

const HELP = `vmm-bench: vmm benchmarks. JSON (schema vmm-bench/1) on stdout, a summary on stderr.

Usage: vmm-bench <command> [options]

Commands:
  lifecycle    Create → ready → first Run true → Remove through the daemon
  raw          the same phases straight against firecracker/fc-sim, no daemon
  compare      lifecycle and raw interleaved (ABAB); daemon/raw ratios per phase
  run-latency  Run true via gRPC vs a direct agent call on the same sandbox
  files        100 MB upload/download MB/s via gRPC vs the agent directly; Watch latency
  startup      daemon spawn → first grpc.health.v1 Health/Check
  restore      Restore → ready / → first Run, and Checkpoint of 128 and 1024 MiB guests
  compare-restore  daemon Restore vs raw /snapshot/load of the same snapshot, ABAB; ratios
  golden       Create → ready with golden snapshots off vs on (two daemons); speed-up
  policy       egress policy cost: Create with vs without a policy, UpdateNetworkPolicy
               latency (root; network mode tap in a private namespace)
  proxy        HTTP through the [proxy] vs the raw ExposePort forwarder, same guest server:
               requests/s and latency, interleaved (root; network mode tap in a private namespace)
  api-load     N sandboxes; h2load (nghttp2-client) List and Inspect over TCP + token; calls/s
  idle-rss     daemon VmRSS with 0 and --steps idle sandboxes; KiB per sandbox
  restart      N sandboxes; SIGKILL the daemon; new daemon → serving, all ready, Run in each
  metrics      GET /metrics of the ops HTTP listener with 0 and N sandboxes vs GET /healthz
               (ABAB, --iterations each, default 200; --sandboxes default 200); p50/p99, bytes
  image-create OCI image → rootfs conversion of a ~50 MB image (cold, cached); Create from
               the cached image vs from the plain rootfs, ABAB (root, umoci, e2fsprogs)
  image-pull   PullImage of a ~50 MB image from docker-registry on loopback vs a plain fetch
               of its blobs and skopeo copy, interleaved; MB/s (use --iterations 5)

Options:
  --iterations N        measured iterations (default 20; run-latency 200: one
                        iteration takes ms, and its p50 moves by tenths of a ms)
  --warmup N            untimed iterations first (default 1)
  --settle-ms MS        compare, compare-restore, golden: pause before
                        each iteration so one side's background work does not land
                        in the other's measurement (default 25)
  --concurrency C       lifecycle: iterations in flight at once (default 1)
  --firecracker BIN     firecracker binary or fc-sim; "auto" (default) = firecracker on
                        PATH when /dev/kvm is usable, else fc-sim
  --readiness R         agent|vmm (default: agent for fc-sim, vmm otherwise)
  --kernel PATH         guest kernel (default .dev/data/images/vmlinux)
  --rootfs PATH         base rootfs (default .dev/data/images/rootfs.ext4)
  --vcpus N             (default 1)
  --memory-mib N        guest memory (default 128)
  --checkpoint-iterations N   restore: checkpoints per guest size (default 3)
  --socket PATH         use the daemon at PATH instead of starting one
  --data-dir PATH       that daemon's data_dir (run-latency with --socket)
  --sandboxes N         api-load, restart: sandboxes held (default 100; metrics 200)
  --create-batch N      api-load, idle-rss, restart: Creates in flight at once (default 4)
  --fc-start-timeout-ms MS  api-load, idle-rss, restart: the daemon's firecracker.start_timeout_ms
                        (default: the daemon's, 3000; raise it on a loaded host where fc-sim starts slowly)
  --requests N          api-load: h2load -n per method (default 50000); proxy: requests per
                        round and side (default 1000)
  --encoding E          api-load: Connect unary json (default) or proto (binary)
  --cpu-profile DIR     api-load: V8 CPU profile of the daemon during each measured h2load run,
                        written to DIR/api-load-<encoding>-<method>.cpuprofile (profiler on: slower)
  --clients N           api-load: h2load -c; proxy: keep-alive connections (default 8)
  --streams N           api-load: h2load -m, streams per connection (default 16)
  --steps N,N           idle-rss: sandbox counts to measure at (default 50,100,150,200)
  --rss-settle-ms MS    idle-rss: quiet before each RSS reading (default 3000)

Exit codes: 0 ok, 1 failure, 2 usage, 3 the daemon does not implement the RPCs (restore).`;

const COMMANDS = {
  lifecycle: lifecycleCommand,
  raw: rawCommand,
  compare: compareCommand,
  "run-latency": runLatencyCommand,
  files: filesCommand,
  startup: startupCommand,
  "compare-restore": compareRestoreCommand,
  golden: goldenCommand,
  policy: policyCommand,
  "image-create": imageCreateCommand,
  "image-pull": imagePullCommand,
} as const;

const FLEET_COMMANDS = ["api-load", "idle-rss", "restart", "metrics"] as const;

class UsageError extends Error {}

function parseEncoding(v: string | undefined): "json" | "proto" {
  if (v === undefined || v === "json" || v === "proto") return v ?? "json";
  throw new UsageError(`--encoding wants json or proto, got ${v}`);
}

function int(name: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} wants an integer >= ${min}, got ${v}`);
  return n;
}

function parse(argv: string[], signal: AbortSignal) {
  const args = argv[0] === "--" ? argv.slice(1) : argv;
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      iterations: { type: "string" },
      warmup: { type: "string" },
      "settle-ms": { type: "string" },
      concurrency: { type: "string" },
      firecracker: { type: "string" },
      readiness: { type: "string" },
      kernel: { type: "string" },
      rootfs: { type: "string" },
      vcpus: { type: "string" },
      "memory-mib": { type: "string" },
      "checkpoint-iterations": { type: "string" },
      socket: { type: "string" },
      "data-dir": { type: "string" },
      sandboxes: { type: "string" },
      "create-batch": { type: "string" },
      "fc-start-timeout-ms": { type: "string" },
      requests: { type: "string" },
      encoding: { type: "string" },
      "cpu-profile": { type: "string" },
      clients: { type: "string" },
      streams: { type: "string" },
      steps: { type: "string" },
      "rss-settle-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) return { help: true as const };
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  if (
    !(command in COMMANDS) &&
    !(FLEET_COMMANDS as readonly string[]).includes(command) &&
    command !== "restore" &&
    command !== "proxy"
  )
    throw new UsageError(`unknown command ${command}`);
  const firecracker =
    values.socket !== undefined && values.firecracker === undefined
      ? null
      : resolveFirecracker(values.firecracker ?? "auto");
  if (firecracker !== null && !existsSync(firecracker)) {
    throw new UsageError(
      `firecracker binary ${firecracker} not found (fc-sim: run node scripts/build.mjs)`,
    );
  }
  const readiness =
    values.readiness ?? (firecracker === null || isSimulated(firecracker) ? "agent" : "vmm");
  if (readiness !== "agent" && readiness !== "vmm")
    throw new UsageError("--readiness wants agent or vmm");
  const kernel = resolve(values.kernel ?? join(DEV_IMAGES_DIR, "vmlinux"));
  const rootfs = resolve(values.rootfs ?? join(DEV_IMAGES_DIR, "rootfs.ext4"));
  if (values.socket === undefined) {
    for (const f of [kernel, rootfs]) {
      if (!existsSync(f))
        throw new UsageError(
          `${f} not found: run bash scripts/dev-images.sh, or pass --kernel/--rootfs`,
        );
    }
  }
  const options: BenchOptions = {
    iterations: int(
      "iterations",
      values.iterations,
      command === "run-latency" || command === "metrics" ? 200 : 20,
      1,
    ),
    warmup: int("warmup", values.warmup, 1, 0),
    settleMs: int("settle-ms", values["settle-ms"], 25, 0),
    concurrency: int("concurrency", values.concurrency, 1, 1),
    firecracker,
    readiness,
    kernel,
    rootfs,
    vcpus: int("vcpus", values.vcpus, 1, 1),
    memoryMib: int("memory-mib", values["memory-mib"], 128, 16),
    socket: values.socket === undefined ? undefined : resolve(values.socket),
    dataDir: values["data-dir"] === undefined ? undefined : resolve(values["data-dir"]),
    signal,
  };
  const steps = (values.steps ?? "50,100,150,200").split(",").map((x) => int("steps", x, 0, 1));
  if (steps.some((x, i) => i > 0 && x <= steps[i - 1]!))
    throw new UsageError(`--steps wants increasing counts, got ${values.steps}`);
  const sandboxes = int("sandboxes", values.sandboxes, command === "metrics" ? 200 : 100, 1);
  return {
    help: false as const,
    command,
    options,
    checkpointIterations: int("checkpoint-iterations", values["checkpoint-iterations"], 3, 1),
    fleet: {
      sandboxes: command === "idle-rss" ? steps[steps.length - 1]! : sandboxes,
      createBatch: int("create-batch", values["create-batch"], 4, 1),
      ...(values["fc-start-timeout-ms"] !== undefined && {
        fcStartTimeoutMs: int("fc-start-timeout-ms", values["fc-start-timeout-ms"], 3000, 1),
      }),
    },
    apiLoad: {
      encoding: parseEncoding(values.encoding),
      ...(values["cpu-profile"] !== undefined && { cpuProfileDir: values["cpu-profile"] }),
      requests: int("requests", values.requests, 50_000, 1),
      clients: int("clients", values.clients, 8, 1),
      maxStreams: int("streams", values.streams, 16, 1),
    },
    proxyRequests: int("requests", values.requests, 1000, 1),
    steps,
    rssSettleMs: int("rss-settle-ms", values["rss-settle-ms"], 3000, 0),
  };
}

async function main(argv: string[]): Promise<number> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`vmm-bench: ${sig}: stopping\n`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv, ac.signal);
  } catch (err) {
    process.stderr.write(`vmm-bench: ${(err as Error).message}\n(see vmm-bench --help)\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const { command, options } = parsed;
  try {
    const result: BenchReport =
      command === "restore"
        ? await restoreCommand(options, parsed.checkpointIterations)
        : command === "proxy"
          ? await proxyCommand({
              ...options,
              requests: parsed.proxyRequests,
              clients: parsed.apiLoad.clients,
            })
          : command === "api-load"
            ? await apiLoadCommand(options, parsed.fleet, parsed.apiLoad)
            : command === "idle-rss"
              ? await idleRssCommand(options, parsed.fleet, parsed.steps, parsed.rssSettleMs)
              : command === "restart"
                ? await restartCommand(options, parsed.fleet)
                : command === "metrics"
                  ? await metricsCommand(options, parsed.fleet)
                  : await COMMANDS[command as keyof typeof COMMANDS](options);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    const b = result.backend;
    process.stderr.write(
      `\nvmm-bench ${result.command}: ${b.firecracker ?? "external daemon"} (${b.version}${b.simulated ? ", SIMULATED" : ""}), ms\n${formatTable(result.phases)}\n`,
    );
    if (result.ratios) process.stderr.write(`\nratios:\n${formatRatios(result.ratios)}\n`);
    const extra = result as unknown as {
      differences?: Record<string, Record<string, number>>;
      speedup?: Record<string, Record<string, number | null>>;
      targets?: Record<string, { value: number; target: string; met: boolean }>;
      daemonCpu?: Record<string, { cpuMs: number; usPerCall: number }>;
    };
    for (const [m, c] of Object.entries(extra.daemonCpu ?? {})) {
      process.stderr.write(`daemon CPU ${m}: ${c.usPerCall} µs/call (${c.cpuMs} ms)\n`);
    }
    for (const [k, t] of Object.entries(extra.targets ?? {})) {
      process.stderr.write(`target ${k}: ${t.value} (${t.target}) ${t.met ? "met" : "MISSED"}\n`);
    }
    for (const [label, table] of [
      ["difference", extra.differences],
      ["speedup", extra.speedup],
    ] as const) {
      if (!table) continue;
      for (const [k, v] of Object.entries(table)) {
        process.stderr.write(
          `${label} ${k}${label === "difference" ? " (ms)" : " (boot/golden)"}: ${Object.entries(v)
            .map(([s, x]) => `${s} ${x}`)
            .join("  ")}\n`,
        );
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof UnimplementedRpcError) {
      process.stderr.write(`vmm-bench ${command}: ${err.message}; no numbers reported.\n`);
      return 3;
    }
    process.stderr.write(
      `vmm-bench ${command}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));

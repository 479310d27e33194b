import { execFileSync, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BenchOptions,
  backendNotes,
  commonParams,
  interleave,
  nextId,
  prefixed,
  ratios,
  report,
  runStart,
  type Side,
  waitReady,
} from "./commands.js";
import { connectDaemon, startDaemon } from "./daemon.js";
import { backendInfo } from "./host.js";
import type { BenchReport } from "./report.js";
import { Samples } from "./stats.js";

const DOMAIN = "bench.test";
const GUEST_PORT = 8080;
const BODY_BYTES = 1024;

/** The guest's server: Node's http, keep-alive, a 1 KiB body per request. */
const guestServer = `
const body = Buffer.alloc(${BODY_BYTES}, "x");
require("http").createServer((q, r) => { r.setHeader("content-type", "text/plain"); r.end(body); })
  .listen(${GUEST_PORT}, "0.0.0.0", () => console.log("up"));
`;

/**
 * The load: `requests` GETs over `concurrency` keep-alive connections; prints
 * each request's latency (ms) and the wall time as JSON.
 */
const loadScript = `
const http = require("http");
const [addr, host, token, n, c] = process.argv.slice(1);
const i = addr.lastIndexOf(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(c) });
const headers = { host, ...(token ? { "x-vmm-access-token": token } : {}) };
const lat = [];
let next = 0, failed = 0;
const one = () => new Promise((done) => {
  const t0 = performance.now();
  const req = http.get({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), path: "/", agent, headers }, (r) => {
    r.resume();
    r.on("end", () => { if (r.statusCode !== 200) failed++; lat.push(performance.now() - t0); done(); });
  });
  req.on("error", () => { failed++; done(); });
});
const worker = async () => { while (next++ < Number(n)) await one(); };
const t0 = performance.now();
Promise.all(Array.from({ length: Number(c) }, worker)).then(() => {
  console.log(JSON.stringify({ elapsedMs: performance.now() - t0, lat, failed }));
  agent.destroy();
});
`;

/** Options of the proxy bench beyond the common ones. */
export interface ProxyBenchOptions extends BenchOptions {
  /** Requests per round and side. */
  readonly requests: number;
  /** Keep-alive connections per round. */
  readonly clients: number;
}

/**
 * HTTP through the daemon's proxy vs through the raw ExposePort forwarder,
 * same sandbox, same guest server, rounds interleaved (ABAB). Needs root: the
 * daemon runs network mode tap inside a namespace made (and deleted) here,
 * and the load runs in that namespace too.
 */
export async function proxyCommand(o: ProxyBenchOptions): Promise<BenchReport> {
  if (process.getuid?.() !== 0) throw new Error("proxy needs root (network mode tap)");
  if (o.socket !== undefined) throw new Error("proxy starts its own daemon (no --socket)");
  if (o.firecracker === null) throw new Error("no firecracker binary to start a daemon with");
  const date = runStart();
  const backend = backendInfo(o.firecracker);
  const tag = `vx${process.pid.toString(36).slice(-4)}`;
  const hostNetns = `${tag}host`;
  const proxyPort = 18_000 + Math.floor(Math.random() * 1000);
  const ip = (args: string[]) => execFileSync("ip", args, { stdio: "ignore" });
  ip(["netns", "add", hostNetns]);
  ip(["-n", hostNetns, "link", "set", "lo", "up"]);
  const raw = new Samples();
  const proxied = new Samples();
  const guest = new AbortController();
  let serving: Promise<void> | undefined;
  try {
    const proc = await startDaemon({
      firecracker: o.firecracker,
      readiness: o.readiness,
      kernel: o.kernel,
      rootfs: o.rootfs,
      vcpus: o.vcpus,
      memoryMib: o.memoryMib,
      network: [
        'mode = "tap"',
        'host_cidr = "10.239.0.0/24"',
        `netns_prefix = "${tag}-"`,
        `host_netns = "${hostNetns}"`,
        "pool_size = 1",
      ],
      extraToml: ["[proxy]", `listen = "127.0.0.1:${proxyPort}"`, `domain = "${DOMAIN}"`],
      wrapper: ["ip", "netns", "exec", hostNetns],
      env: { FC_SIM_GUEST: "host" },
    });
    const clients = connectDaemon(proc.socket);
    try {
      const sb = clients.sandbox;
      const id = nextId("x");
      await sb.create({ id });
      await waitReady(sb, id);
      let out = "";
      serving = (async () => {
        async function* input() {
          yield {
            payload: {
              case: "init" as const,
              value: { id, cmd: [process.execPath, "-e", guestServer] },
            },
          };
          await new Promise((r) => guest.signal.addEventListener("abort", r));
        }
        for await (const m of sb.exec(input(), { signal: guest.signal }))
          if (!m.done) out += Buffer.from(m.data).toString();
      })().catch(() => {});
      for (let i = 0; !out.includes("up"); i++) {
        if (i > 200) throw new Error(`the guest server did not start: ${out}`);
        await sleep(50);
      }
      const { hostAddress, url } = await sb.exposePort({ id, guestPort: GUEST_PORT });
      const token = /vmm_access_token=(.+)$/.exec(url)?.[1];
      if (token === undefined)
        throw new Error(`ExposePort answered no proxy URL: ${JSON.stringify(url)}`);
      const host = `${GUEST_PORT}-${id}.${DOMAIN}`;
      const round =
        (address: string, tokenArg: string) =>
        async (s: Samples, timed: boolean): Promise<void> => {
          const r = await load(hostNetns, [
            address,
            host,
            tokenArg,
            String(o.requests),
            String(o.clients),
          ]);
          if (r.failed > 0)
            throw new Error(`${r.failed} of ${o.requests} requests to ${address} failed`);
          if (!timed) return;
          s.add("requests_per_s", (o.requests / r.elapsedMs) * 1000);
          for (const ms of r.lat) s.add("latency_ms", ms);
        };
      const sides: Side[] = [
        [round(hostAddress, ""), raw],
        [round(`127.0.0.1:${proxyPort}`, token), proxied],
      ];
      await interleave(sides, o);
      await sb.remove({ id, force: true });
    } finally {
      guest.abort();
      await serving;
      clients.close();
      await proc.stop();
    }
  } finally {
    execFileSync("sh", [
      "-c",
      `for n in $(ip netns list | awk '/^${tag}/{print $1}'); do ip netns del $n; done`,
    ]);
  }
  const rawStats = raw.summarize();
  const proxyStats = proxied.summarize();
  return report(
    "proxy",
    date,
    backend,
    {
      ...commonParams(o),
      network: "tap",
      requestsPerRound: o.requests,
      connections: o.clients,
      bodyBytes: BODY_BYTES,
      order: "ABAB (alternating first side)",
    },
    { ...prefixed("forwarder", rawStats), ...prefixed("proxy", proxyStats) },
    [
      ...backendNotes(backend, o.readiness),
      `each round: ${o.requests} GET / over ${o.clients} keep-alive connections (node:http client in the daemon's namespace) to a Node http server in the guest answering ${BODY_BYTES} bytes`,
      "forwarder: to ExposePort's host_address (the TCP forwarder: one guest connection per client connection); proxy: to [proxy] listen with Host <port>-<id>.<domain> and X-Vmm-Access-Token (one guest connection per request, through the same forwarder's dial)",
      "requests_per_s: one sample per round; latency_ms: every request of every timed round",
    ],
    { ratios: ratios(proxyStats, rawStats) },
  );
}

async function load(
  netns: string,
  args: string[],
): Promise<{ elapsedMs: number; lat: number[]; failed: number }> {
  const child = spawn("ip", ["netns", "exec", netns, process.execPath, "-e", loadScript, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (b) => {
    out += b;
  });
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  if (code !== 0) throw new Error(`load generator exited ${code}`);
  return JSON.parse(out) as { elapsedMs: number; lat: number[]; failed: number };
}

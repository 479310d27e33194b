import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_BIN } from "./daemon-process.js";
import { type PromText, parsePromText } from "./prom-text.js";
import { type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

const execFileAsync = promisify(execFile);
const TOKEN = "ops-test-token-7f3a";

/** The ops listener's base URL, from the daemon's "serving" log line. */
function opsUrl(d: SimDaemon): string {
  const line = d
    .stderr()
    .split("\n")
    .find((l) => l.includes('"msg":"serving"'));
  const http = (JSON.parse(line!) as { listeners: string[] }).listeners.find((a) =>
    a.startsWith("http:"),
  );
  if (!http) throw new Error(`no http listener in ${line}`);
  return `http://${http.slice("http:".length)}`;
}

const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

async function scrape(base: string): Promise<PromText> {
  const res = await fetch(`${base}/metrics`, { headers: bearer() });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePromText(await res.text());
}

/** Scrapes until `ok` holds (values that move in the background: create finishing, removal). */
async function scrapeUntil(
  base: string,
  ok: (m: PromText) => boolean,
  what: string,
): Promise<PromText> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = await scrape(base);
    if (ok(m)) return m;
    if (Date.now() > deadline)
      throw new Error(
        `metrics never showed ${what}: ${JSON.stringify(m.samples.filter((s) => s.name === "vmm_rpc_requests_total"))}`,
      );
    await sleep(50);
  }
}

describe("ops HTTP listener ([http] on loopback, with a token)", () => {
  let d: SimDaemon;
  let base: string;
  beforeAll(async () => {
    d = await startSimDaemon({
      sections: `[http]\nlisten = "127.0.0.1:0"\nauth_token = "${TOKEN}"`,
    });
    base = opsUrl(d);
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("/healthz and /readyz answer 200 without a token; other methods get 405", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      const res = await fetch(`${base}${path}`);
      expect([path, res.status, await res.text()]).toEqual([path, 200, "ok\n"]);
    }
    const post = await fetch(`${base}/healthz`, { method: "POST" });
    expect(post.status).toBe(405);
  });

  it("/metrics needs the token: none or a wrong one is 401 with WWW-Authenticate", async () => {
    const none = await fetch(`${base}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="vmm"');
    const wrong = await fetch(`${base}/metrics`, { headers: bearer(`${TOKEN}x`) });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${base}/metrics`, { headers: bearer() });
    expect(right.status).toBe(200);
    const unknown = await fetch(`${base}/nope`, { headers: bearer() });
    expect(unknown.status).toBe(404);
  });

  it("serves the Connect API under /api with the token, and refuses it without", async () => {
    const call = (headers: Record<string, string>) =>
      fetch(`${base}/api/sandbox.v1.SandboxService/List`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: "{}",
      });
    const denied = await call({});
    expect(denied.status).toBe(401);
    const ok = await call(bearer());
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({}); // no sandboxes yet: an empty ListSandboxesResponse
    const notFound = await fetch(`${base}/api/sandbox.v1.SandboxService/Inspect`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer() },
      body: JSON.stringify({ id: "no-such-sandbox" }),
    });
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as { code: string }).code).toBe("not_found");
  });

  it("metrics move with a sandbox's life; its series go when it is removed", async () => {
    const before = await scrape(base);
    for (const name of [
      "vmm_sandboxes",
      "vmm_rpc_requests_total",
      "vmm_rpc_duration_seconds",
      "vmm_sandbox_create_duration_seconds",
      "vmm_sandbox_memory_bytes",
      "vmm_sandbox_cpu_seconds_total",
      "vmm_sandbox_disk_bytes",
      "vmm_network_slots",
      "vmm_spare_clones",
      "vmm_golden_snapshots",
      "process_cpu_seconds_total",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(before.types.has(name), name).toBe(true);
    }
    expect(before.types.get("vmm_rpc_duration_seconds")).toBe("histogram");
    expect(before.types.get("vmm_sandbox_cpu_seconds_total")).toBe("counter");
    const ready0 = before.value("vmm_sandboxes", { state: "ready" })!;
    const creates0 = before.value("vmm_sandbox_create_duration_seconds_count", { path: "boot" })!;
    const createRpc = { method: "sandbox.v1.SandboxService/Create", code: "ok" };
    const rpc0 = before.value("vmm_rpc_requests_total", createRpc) ?? 0;
    expect(ready0).toBe(0);

    await d.sandboxes.create({ id: "ops-m1" });
    const info = await waitForState(d, "ops-m1", "ready");
    const during = await scrapeUntil(
      base,
      (m) =>
        m.value("vmm_sandbox_create_duration_seconds_count", { path: "boot" }) === creates0 + 1,
      "the boot create in the histogram",
    );
    expect(during.value("vmm_sandboxes", { state: "ready" })).toBe(1);
    expect(during.value("vmm_rpc_requests_total", createRpc)).toBe(rpc0 + 1);
    expect(
      during.value("vmm_rpc_duration_seconds_count", {
        method: "sandbox.v1.SandboxService/Create",
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      during.value("vmm_sandbox_create_duration_seconds_sum", { path: "boot" }),
    ).toBeGreaterThan(0);
    const id = { sandbox_id: "ops-m1" };
    expect(during.value("vmm_sandbox_memory_bytes", id)).toBeGreaterThan(1 << 20); // fc-sim is a node process
    expect(during.value("vmm_sandbox_cpu_seconds_total", id)).toBeGreaterThan(0);
    expect(during.value("vmm_sandbox_disk_bytes", id)).toBe(Number(info.diskBytes));

    // A failed call counts under its code.
    await d.sandboxes.inspect({ id: "no-such" }).catch(() => {});
    const failed = await scrape(base);
    expect(
      failed.value("vmm_rpc_requests_total", {
        method: "sandbox.v1.SandboxService/Inspect",
        code: "not_found",
      }),
    ).toBeGreaterThanOrEqual(1);

    await d.sandboxes.remove({ id: "ops-m1", force: true });
    const after = await scrapeUntil(
      base,
      (m) => m.find("vmm_sandbox_disk_bytes", id).length === 0,
      "the removed sandbox's series gone",
    );
    expect(after.find("vmm_sandbox_memory_bytes", id)).toEqual([]);
    expect(after.find("vmm_sandbox_cpu_seconds_total", id)).toEqual([]);
    expect(after.value("vmm_sandboxes", { state: "ready" })).toBe(0);
  });

  it("counts a streaming call when it ends (Events cancelled by the client)", async () => {
    const events = { method: "sandbox.v1.SandboxService/Events", code: "canceled" };
    const n0 = (await scrape(base)).value("vmm_rpc_requests_total", events) ?? 0;
    const ac = new AbortController();
    const stream = (async () => {
      for await (const _ of d.sandboxes.events({}, { signal: ac.signal })) {
        // no events expected
      }
    })().catch(() => {});
    await sleep(200);
    ac.abort();
    await stream;
    await scrapeUntil(
      base,
      (m) => m.value("vmm_rpc_requests_total", events) === n0 + 1,
      "the cancelled Events stream",
    );
  });
});

describe("ops HTTP listener without a token", () => {
  it("is open on loopback", async () => {
    await using d = await startSimDaemon({ sections: '[http]\nlisten = "127.0.0.1:0"' });
    const res = await fetch(`${opsUrl(d)}/metrics`);
    expect(res.status).toBe(200);
  });

  it.for([
    ["0.0.0.0:0", "VMM_HTTP_LISTEN"],
    ["[::]:9464", "file"],
    ["192.0.2.1:9464", "file"],
  ])("refuses to start on %s (set through %s) with a config error", async ([listen, how]) => {
    const dir = mkdtempSync(join(tmpdir(), "vmm-ops-"));
    try {
      const config = join(dir, "vmm.toml");
      writeFileSync(config, how === "file" ? `[http]\nlisten = "${listen}"\n` : "");
      const run = execFileAsync(
        process.execPath,
        [DAEMON_BIN, "--config", config, "--check-config"],
        {
          env: { ...process.env, ...(how !== "file" && { [how!]: listen }) },
        },
      );
      const err = (await run.then(
        () => undefined,
        (e: unknown) => e,
      )) as { code: number; stderr: string } | undefined;
      expect(err?.code).toBe(2);
      expect(err?.stderr).toMatch(
        /http\.listen .* is not loopback-only and http\.auth_token is empty/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

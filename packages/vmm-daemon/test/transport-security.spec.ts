import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { healthV1 } from "@vmm/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemonProcess } from "./daemon-process.js";
import { loadGrpcJsPackage, type Method } from "./grpc-js-client.js";
import { bestOfMs } from "./responsiveness.js";

const run = promisify(execFile);
const pkg = loadGrpcJsPackage();

type HealthClient = grpc.Client & Record<string, Method>;
const HealthCtor = (((pkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject)
  .Health as unknown as new (
  a: string,
  c: grpc.ChannelCredentials,
  o?: object,
) => HealthClient;

/** Health/Check with optional metadata; resolves the response or rejects with the ServiceError. */
function check(client: HealthClient, md = new grpc.Metadata()): Promise<unknown> {
  return new Promise((resolve, reject) =>
    client.Check!({ service: "" }, md, (e: Error | null, r: unknown) =>
      e ? reject(e) : resolve(r),
    ),
  );
}

const tcpAddress = (stderr: string) => /"tcp:([^"]+)"/.exec(stderr)![1]!;

/** A CA, a server certificate and client certificates, made with openssl in `dir`. */
async function makePki(dir: string) {
  const f = (name: string) => join(dir, name);
  const ca = async (name: string) =>
    run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      f(`${name}.key`),
      "-out",
      f(`${name}.pem`),
    ]);
  const leaf = async (name: string, caName: string, ext: string) => {
    await run("openssl", [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      f(`${name}.key`),
      "-out",
      f(`${name}.csr`),
    ]);
    const extFile = f(`${name}.ext`);
    await run("sh", ["-c", `printf '%s\\n' "$1" > "$2"`, "sh", ext, extFile]);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      f(`${name}.csr`),
      "-CA",
      f(`${caName}.pem`),
      "-CAkey",
      f(`${caName}.key`),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      extFile,
      "-out",
      f(`${name}.pem`),
    ]);
  };
  await ca("ca");
  await ca("other-ca");
  await leaf("server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1");
  await leaf("client", "ca", "extendedKeyUsage=clientAuth");
  await leaf("stranger", "other-ca", "extendedKeyUsage=clientAuth");
  const read = (name: string) => readFileSync(f(name));
  return { f, read };
}

describe("mutual TLS on the TCP listener", () => {
  let dir: string;
  let pki: Awaited<ReturnType<typeof makePki>>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vmmd-mtls-"));
    pki = await makePki(dir);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const grpcOver = (address: string, creds: grpc.ChannelCredentials) =>
    new HealthCtor(address, creds, { "grpc.ssl_target_name_override": "localhost" });

  it("fails the handshake without a client certificate or with one of another CA; a good one gets through", async () => {
    const { f, read } = pki;
    await using d = await startDaemonProcess(
      `tcp_addr = "127.0.0.1:0"\ntls_cert = "${f("server.pem")}"\ntls_key = "${f("server.key")}"\ntls_client_ca = "${f("ca.pem")}"`,
    );
    const address = tcpAddress(d.stderr());
    const [host, port] = [address.replace(/:\d+$/, ""), Number(address.replace(/^.*:/, ""))];

    // Raw TLS: the server refuses the handshake (TLS 1.3 reports it as an alert on first read).
    const rawHandshake = (cert?: { key: Buffer; cert: Buffer }) =>
      new Promise<string>((resolve) => {
        const s = tls.connect({
          host,
          port,
          ca: read("ca.pem"),
          servername: "localhost",
          ALPNProtocols: ["h2"],
          ...cert,
        });
        s.on("data", () => resolve("data"));
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.once("close", () => resolve("closed"));
        setTimeout(() => {
          resolve("still open");
          s.destroy();
        }, 3000).unref();
      });
    expect(await rawHandshake()).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET|closed/);
    expect(await rawHandshake({ key: read("stranger.key"), cert: read("stranger.pem") })).toMatch(
      /UNKNOWN_CA|ECONNRESET|closed/,
    );

    const none = grpcOver(address, grpc.credentials.createSsl(read("ca.pem")));
    await expect(check(none)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    none.close();
    const stranger = grpcOver(
      address,
      grpc.credentials.createSsl(read("ca.pem"), read("stranger.key"), read("stranger.pem")),
    );
    await expect(check(stranger)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    stranger.close();
    const good = grpcOver(
      address,
      grpc.credentials.createSsl(read("ca.pem"), read("client.key"), read("client.pem")),
    );
    await expect(check(good)).resolves.toEqual({ status: "SERVING" });
    good.close();

    // curl, as the docs show it.
    const curl = (extra: string[]) =>
      run("curl", [
        "-sS",
        "--cacert",
        f("ca.pem"),
        ...extra,
        "-H",
        "content-type: application/json",
        "-d",
        "{}",
        `https://localhost:${port}/grpc.health.v1.Health/Check`,
        "--resolve",
        `localhost:${port}:127.0.0.1`,
      ]).then(
        (r) => r.stdout,
        (e: { code: number }) => `curl exit ${e.code}`,
      );
    expect(await curl([])).toMatch(/^curl exit \d+$/);
    expect(await curl(["--cert", f("client.pem"), "--key", f("client.key")])).toBe(
      '{"status":"SERVING"}',
    );
  });

  it("with auth_token as well, requires both the certificate and the token", async () => {
    const { f, read } = pki;
    await using d = await startDaemonProcess(
      `tcp_addr = "127.0.0.1:0"\nauth_token = "s3cret"\ntls_cert = "${f("server.pem")}"\ntls_key = "${f("server.key")}"\ntls_client_ca = "${f("ca.pem")}"`,
    );
    const address = tcpAddress(d.stderr());
    const withCert = grpcOver(
      address,
      grpc.credentials.createSsl(read("ca.pem"), read("client.key"), read("client.pem")),
    );
    await expect(check(withCert)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    const md = new grpc.Metadata();
    md.set("authorization", "Bearer s3cret");
    await expect(check(withCert, md)).resolves.toEqual({ status: "SERVING" });
    withCert.close();
    const noCert = grpcOver(address, grpc.credentials.createSsl(read("ca.pem")));
    await expect(check(noCert, md)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    noCert.close();
  });
});

/** VmRSS of `pid` in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

describe("bearer token checked on the headers, before the body", () => {
  it("answers each protocol's UNAUTHENTICATED shape without reading the body", async () => {
    await using d = await startDaemonProcess('tcp_addr = "127.0.0.1:0"\nauth_token = "s3cret"');
    const base = `http://${tcpAddress(d.stderr())}`;
    // Connect unary over HTTP/1.1: HTTP 401 and the JSON error body.
    const unaryRes = await fetch(`${base}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer wrong" },
      body: "{}",
    });
    expect(unaryRes.status).toBe(401);
    expect(await unaryRes.json()).toEqual({
      code: "unauthenticated",
      message: "invalid bearer token",
    });
    // gRPC (grpc-js): trailers-only grpc-status 16.
    const client = new HealthCtor(tcpAddress(d.stderr()), grpc.credentials.createInsecure());
    await expect(check(client)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringContaining("missing bearer token"),
    });
    client.close();
    // Connect streaming and gRPC-Web (connect-node clients) map it to Unauthenticated too.
    const { createConnectTransport, createGrpcWebTransport } = await import(
      "@connectrpc/connect-node"
    );
    for (const transport of [
      createConnectTransport({ baseUrl: base, httpVersion: "2" }),
      createConnectTransport({ baseUrl: base, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: base }),
    ]) {
      const health = createClient(healthV1.Health, transport);
      await expect(health.check({ service: "" })).rejects.toMatchObject({ code: 16 });
      const watch = (async () => {
        for await (const _ of health.watch({ service: "" })) return "got a message";
      })();
      await expect(watch).rejects.toMatchObject({ code: 16 });
    }
  });

  it("200 unauthenticated clients stalling 4 MiB uploads: answered at once, daemon RSS stays bounded", async () => {
    await using d = await startDaemonProcess('tcp_addr = "127.0.0.1:0"\nauth_token = "s3cret"');
    const address = tcpAddress(d.stderr());
    const [host, port] = [address.replace(/:\d+$/, ""), Number(address.replace(/^.*:/, ""))];
    const health = createClient(
      healthV1.Health,
      createGrpcTransport({
        baseUrl: "http://localhost",
        nodeOptions: { createConnection: () => net.connect(d.socket) },
      }),
    );
    await health.check({ service: "" });
    const before = rss(d.child.pid!);
    const chunk = Buffer.alloc(1 << 20, 0x61); // 1 MiB of the declared 4 MiB, then nothing
    const cleanup: (() => void)[] = [];
    const started = performance.now();
    try {
      // 100 × Connect over HTTP/1.1 with Content-Length: 4 MiB.
      const h1 = Array.from(
        { length: 100 },
        () =>
          new Promise<string>((resolve) => {
            const s = net.connect(port, host);
            cleanup.push(() => s.destroy());
            let got = "";
            s.on("data", (b) => {
              got += b.toString();
              if (got.includes("\r\n\r\n")) resolve(got.split("\r\n")[0]!);
            });
            s.on("error", () => resolve(got.split("\r\n")[0] || "error"));
            s.write(
              `POST /sandbox.v1.SandboxService/Create HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${4 << 20}\r\n\r\n`,
            );
            s.write(chunk);
          }),
      );
      // 100 × gRPC over h2c: one stream each, 1 MiB of a 4 MiB message, then nothing.
      const h2 = Array.from(
        { length: 100 },
        () =>
          new Promise<string>((resolve) => {
            const session = http2.connect(`http://${address}`);
            cleanup.push(() => session.destroy());
            session.on("error", () => {});
            const stream = session.request({
              ":method": "POST",
              ":path": "/sandbox.v1.SandboxService/Create",
              "content-type": "application/grpc",
              te: "trailers",
            });
            stream.on("error", () => {});
            stream.on("response", (h) =>
              resolve(`${h[":status"]} grpc-status ${h["grpc-status"]}`),
            );
            const prefix = Buffer.alloc(5);
            prefix.writeUInt32BE(4 << 20, 1);
            stream.write(prefix);
            stream.write(chunk);
          }),
      );
      const answers = await Promise.all([...h1, ...h2]);
      const elapsed = performance.now() - started;
      expect(answers.filter((a) => a === "HTTP/1.1 401 Unauthorized")).toHaveLength(100);
      expect(answers.filter((a) => a === "200 grpc-status 16")).toHaveLength(100);
      expect(elapsed).toBeLessThan(5000);
      // The daemon keeps serving while they stall.
      expect(await bestOfMs(() => health.check({ service: "" }))).toBeLessThan(100);
      const grown = rss(d.child.pid!) - before;
      // Buffering the bodies (the bug) costs ≥ 200 MiB here. With the gate nothing is
      // kept; what remains is garbage from Node discarding the HTTP/1.1 bodies as they
      // arrive (measured 20-62 MiB, not yet collected).
      expect(grown).toBeLessThan(96 << 20);
    } finally {
      for (const c of cleanup) c();
    }
  }, 30_000);
});

describe("grpc.socket_group", () => {
  it.skipIf(process.getuid?.() !== 0)(
    "chowns the Unix socket to the group (created by the test)",
    async () => {
      const group = `vmmt${process.pid % 100000}`;
      execFileSync("groupadd", [group]);
      try {
        const gid = Number(
          execFileSync("getent", ["group", group], { encoding: "utf8" }).split(":")[2],
        );
        await using d = await startDaemonProcess(`socket_group = "${group}"`);
        expect(statSync(d.socket).gid).toBe(gid);
        expect(statSync(d.socket).mode & 0o777).toBe(0o660);
      } finally {
        execFileSync("groupdel", [group]);
      }
    },
  );
});

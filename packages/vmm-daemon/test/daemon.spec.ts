import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { Agent, fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_BIN, type DaemonProcess, startDaemonProcess } from "./daemon-process.js";
import { loadGrpcJsPackage, type Method, serviceClient, unary } from "./grpc-js-client.js";

const run = promisify(execFile);
const pkg = loadGrpcJsPackage();

describe("vmm-daemon serving over its Unix socket", () => {
  let d: DaemonProcess;
  beforeAll(async () => {
    d = await startDaemonProcess("max_message_bytes = 2048");
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("answers grpc.health.v1.Health/Check for the server and each service (grpc-js)", async () => {
    const health = serviceClient(pkg, "grpc.health.v1.Health", d.socket);
    await expect(unary(health, "Check", { service: "" })).resolves.toEqual({ status: "SERVING" });
    await expect(unary(health, "Check", { service: "sandbox.v1.SandboxService" })).resolves.toEqual(
      {
        status: "SERVING",
      },
    );
    await expect(unary(health, "Check", { service: "nope.Service" })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
    health.close();
  });

  it.each(["grpc.reflection.v1", "grpc.reflection.v1alpha"])(
    "serves %s reflection the way grpcurl uses it (list, then describe by symbol)",
    async (version) => {
      const client = serviceClient(pkg, `${version}.ServerReflection`, d.socket);
      const call = (client.ServerReflectionInfo as Method)() as grpc.ClientDuplexStream<
        object,
        Record<string, never>
      >;
      const responses: Record<string, unknown>[] = [];
      call.on("data", (r: Record<string, unknown>) => responses.push(r));
      const ended = new Promise((r) => call.on("end", r));
      call.write({ host: "", list_services: "*" });
      call.write({ host: "", file_containing_symbol: "sandbox.v1.SandboxService" });
      call.write({ host: "", file_containing_symbol: "sandbox.v1.SandboxService.Create" });
      call.write({ host: "", file_containing_symbol: "no.Such" });
      call.end();
      await ended;
      client.close();
      expect(responses).toHaveLength(4);
      const list = responses[0]!.list_services_response as { service: { name: string }[] };
      expect(list.service.map((s) => s.name).sort()).toEqual([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "sandbox.v1.HostService",
        "sandbox.v1.ImageService",
        "sandbox.v1.SandboxFilesService",
        "sandbox.v1.SandboxService",
        "sandbox.v1.SandboxSnapshotService",
      ]);
      for (const r of responses.slice(1, 3)) {
        const files = (r.file_descriptor_response as { file_descriptor_proto: Buffer[] })
          .file_descriptor_proto;
        const file = fromBinary(FileDescriptorProtoSchema, files[0]!);
        expect(file.name).toBe("sandbox/v1/sandbox.proto");
        const svc = file.service.find((s) => s.name === "SandboxService")!;
        expect(svc.method.map((m) => m.name)).toEqual([
          "Create",
          "Run",
          "Exec",
          "Stop",
          "Remove",
          "Inspect",
          "List",
          "Events",
          "Pause",
          "Resume",
          "ListProcesses",
          "SignalProcess",
          "ExposePort",
          "UpdateNetworkPolicy",
        ]);
      }
      expect((responses[3]!.error_response as { error_code: number }).error_code).toBe(
        grpc.status.NOT_FOUND,
      );
    },
  );

  it("answers a Connect JSON POST over HTTP/1.1 (undici fetch on the socket)", async () => {
    const dispatcher = new Agent({ connect: { socketPath: d.socket } });
    const res = await fetch("http://localhost/grpc.health.v1.Health/Check", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      dispatcher,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("vmm-version")).toMatch(/^\d+\.\d+\.\d+/);
    expect(await res.json()).toEqual({ status: "SERVING" });
    await dispatcher.close();
  });

  it("answers UNIMPLEMENTED for an unknown RPC", async () => {
    const client = new grpc.Client(`unix://${d.socket}`, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        "/sandbox.v1.SandboxService/NoSuchMethod",
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (e) => resolve(e!),
      );
    });
    client.close();
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("rejects a message over grpc.max_message_bytes with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const sandbox = serviceClient(pkg, "sandbox.v1.SandboxService", d.socket);
    const big = { id: "x".repeat(10_000) };
    await expect(unary(sandbox, "Create", big)).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    const health = serviceClient(pkg, "grpc.health.v1.Health", d.socket);
    await expect(unary(health, "Check", { service: "" })).resolves.toEqual({ status: "SERVING" });
    sandbox.close();
    health.close();
  });

  it("refuses to start on a socket a live daemon serves", async () => {
    const config = join(d.dir, "second.toml");
    writeFileSync(config, `[grpc]\nunix_socket = "${d.socket}"\n`);
    const err = await run(process.execPath, [DAEMON_BIN, "--config", config], {
      env: { ...process.env, VMM_FIRECRACKER_DATA_DIR: join(d.dir, "d2") },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toContain("another daemon is already serving");
  });
});

describe("vmm-daemon startup and shutdown", () => {
  it("removes a stale socket left by a dead daemon", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "vmmd-stale-"));
    const socket = join(dir, "vmm.sock");
    const stale = net.createServer().listen(socket);
    await new Promise((r) => stale.once("listening", r));
    // Simulate a crash: the socket file stays, nobody accepts.
    (stale as unknown as { _handle: { close(): void } })._handle.close();
    await using d = await startDaemonProcess("", { VMM_GRPC_UNIX_SOCKET: socket });
    expect(d.stderr()).toContain('"msg":"serving"');
    rmSync(dir, { recursive: true, force: true });
  });

  it("drains an in-flight call on SIGTERM, then exits 0 and removes its socket", async () => {
    const d = await startDaemonProcess("shutdown_grace_ms = 3000");
    const health = serviceClient(pkg, "grpc.health.v1.Health", d.socket);
    const watch = (health.Watch as Method)({ service: "" }) as grpc.ClientReadableStream<{
      status: string;
    }>;
    const statuses: string[] = [];
    watch.on("data", (m: { status: string }) => statuses.push(m.status));
    watch.on("error", () => {});
    // The stream is in flight once its first status arrived (a fixed sleep raced a busy host).
    await new Promise<void>((resolve) => watch.once("data", () => resolve()));
    const code = await d.stop("SIGTERM");
    health.close();
    expect(code).toBe(0);
    expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
    const { existsSync } = await import("node:fs");
    expect(existsSync(d.socket)).toBe(false);
    await d[Symbol.asyncDispose]();
  });

  it.each([
    ['[grpc]\nunix_sockett = "/tmp/x"\n', /:2: unknown key grpc\.unix_sockett/],
    [
      '[defaults]\nvcpus = "two"\n',
      /:2: defaults\.vcpus must be an integer from 1 to 32, got "two"/,
    ],
    ["[nope]\nx = 1\n", /:1: unknown section \[nope\]/],
    ['[agent]\nreadiness = "maybe"\n', /agent\.readiness must be one of "agent", "vmm"/],
    ['[grpc]\ntcp_addr = "127.0.0.1:0"\n', /grpc\.tcp_addr is set but neither grpc\.auth_token/],
    [
      '[grpc]\ntcp_addr = "127.0.0.1:0"\ntls_cert = "/x/cert.pem"\ntls_key = "/x/key.pem"\n',
      /neither grpc\.auth_token nor grpc\.tls_client_ca is: .*TLS encrypts but does not authenticate/,
    ],
    [
      '[grpc]\ntcp_addr = "127.0.0.1:0"\ntls_client_ca = "/x/ca.pem"\n',
      /grpc\.tls_client_ca is set but grpc\.tls_cert\/tls_key are not/,
    ],
    [
      '[grpc]\nsocket_group = "vmm-no-such-group"\n',
      /grpc\.socket_group "vmm-no-such-group" is not a known group/,
    ],
    ["[grpc\n", /invalid TOML/],
  ])("exits 2 with one line naming the key for bad config %j", async (toml, pattern) => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "vmmd-bad-"));
    const file = join(dir, "bad.toml");
    writeFileSync(file, toml);
    const err = (await run(process.execPath, [DAEMON_BIN, "--config", file]).catch((e) => e)) as {
      code: number;
      stderr: string;
    };
    rmSync(dir, { recursive: true, force: true });
    expect(err.code).toBe(2);
    expect(err.stderr.trim().split("\n")).toHaveLength(1);
    expect(err.stderr).toMatch(pattern);
  });

  it("exits 2 for a bad environment override, naming the variable", async () => {
    const err = (await run(process.execPath, [DAEMON_BIN, "--check-config"], {
      env: { ...process.env, VMM_AGENT_PORT: "abc" },
    }).catch((e) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(2);
    expect(err.stderr).toContain("VMM_AGENT_PORT");
  });

  it("--check-config shows each value and where it came from", async () => {
    const { stdout } = await run(process.execPath, [DAEMON_BIN, "--check-config"], {
      env: {
        ...process.env,
        VMM_GRPC_UNIX_SOCKET: "/tmp/vmm-check.sock",
        VMM_AGENT_READINESS: "vmm",
      },
    });
    expect(stdout).toContain('unix_socket = "/tmp/vmm-check.sock"  # env VMM_GRPC_UNIX_SOCKET');
    expect(stdout).toContain('readiness = "vmm"  # env VMM_AGENT_READINESS');
    expect(stdout).toContain("vcpus = 1  # default");
  });

  it("requires the bearer token on TCP and accepts it", async () => {
    await using d = await startDaemonProcess('tcp_addr = "127.0.0.1:0"\nauth_token = "s3cret"');
    const m = /"listeners":\["unix:[^"]+","tcp:([^"]+)"\]/.exec(d.stderr());
    expect(m).not.toBeNull();
    const address = m![1]!;
    const health = (pkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject;
    const Ctor = (health.v1 as grpc.GrpcObject).Health as unknown as new (
      a: string,
      c: grpc.ChannelCredentials,
    ) => grpc.Client & Record<string, Method>;
    const client = new Ctor(address, grpc.credentials.createInsecure());
    await expect(unary(client, "Check", { service: "" })).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
    const md = new grpc.Metadata();
    md.set("authorization", "Bearer s3cret");
    const ok = await new Promise((resolve, reject) =>
      client.Check!({ service: "" }, md, (e: Error | null, r: unknown) =>
        e ? reject(e) : resolve(r),
      ),
    );
    expect(ok).toEqual({ status: "SERVING" });
    client.close();
  });

  it("serves TLS on TCP when tls_cert/tls_key are set (with the token)", async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "vmmd-tls-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ]);
    try {
      await using d = await startDaemonProcess(
        `tcp_addr = "127.0.0.1:0"\nauth_token = "s3cret"\ntls_cert = "${cert}"\ntls_key = "${key}"`,
      );
      const address = /"tcp:([^"]+)"/.exec(d.stderr())![1]!;
      const health = (pkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject;
      const Ctor = (health.v1 as grpc.GrpcObject).Health as unknown as new (
        a: string,
        c: grpc.ChannelCredentials,
        o?: object,
      ) => grpc.Client & Record<string, Method>;
      const tls = new Ctor(address, grpc.credentials.createSsl(readFileSync(cert)), {
        "grpc.ssl_target_name_override": "localhost",
      });
      const md = new grpc.Metadata();
      md.set("authorization", "Bearer s3cret");
      const ok = await new Promise((resolve, reject) =>
        tls.Check!({ service: "" }, md, (e: Error | null, r: unknown) =>
          e ? reject(e) : resolve(r),
        ),
      );
      expect(ok).toEqual({ status: "SERVING" });
      tls.close();
      // A cleartext client cannot talk to the TLS listener.
      const clear = new Ctor(address, grpc.credentials.createInsecure());
      await expect(unary(clear, "Check", { service: "" })).rejects.toMatchObject({
        code: grpc.status.UNAVAILABLE,
      });
      clear.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(process.getuid?.() !== 0)(
    "falls back to network mode none, saying so, when it lacks CAP_NET_ADMIN",
    async () => {
      await using d = await startDaemonProcess(
        '[network]\nmode = "tap"\nhost_netns = "vmm-no-such-ns"',
        {},
        ["setpriv", "--bounding-set", "-net_admin", "--"],
      );
      expect(d.stderr()).toContain("needs CAP_NET_ADMIN");
      expect(d.stderr()).toContain("using network mode none");
    },
  );
});

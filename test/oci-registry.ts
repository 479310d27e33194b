// A real OCI distribution registry for tests: Debian's docker-registry
// (distribution v2) on loopback, with filesystem storage in a temp dir,
// behind a small Node front that counts requests, can demand basic or bearer
// auth (the registry's own htpasswd needs bcrypt) and can inject faults
// (a corrupted blob, a transfer cut short, Range ignored). Images are built in
// the test (gzip'd tar layers) and pushed with the registry HTTP API.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";

/** Path of Debian's registry binary (package docker-registry). */
export const REGISTRY_BIN = "/usr/bin/docker-registry";

/** How the front authenticates pulls. */
export type FrontAuth =
  | { readonly kind: "none" }
  | { readonly kind: "basic"; readonly username: string; readonly password: string }
  /** WWW-Authenticate: Bearer realm=<front>/token; the token endpoint wants these basic credentials. */
  | { readonly kind: "bearer"; readonly username: string; readonly password: string };

/** Faults the front injects into blob GETs, per digest. Mutable by tests. */
export interface Faults {
  /** Blobs served with one byte flipped (same length). */
  readonly corrupt: Set<string>;
  /** Blob → bytes after which the next transfer of it is cut (once). */
  readonly cutAfter: Map<string, number>;
  /** Answer Range requests with the whole blob (200), as some registries do. */
  ignoreRange: boolean;
  /** Ask upstream for one byte earlier than a Range request said (a 206 for other bytes). */
  shiftRange: boolean;
  /** Blobs whose GET sends headers and then no body until the client goes away. */
  readonly stall: Set<string>;
}

/** One request the front saw. */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly status: number;
}

/** A descriptor as pushed. */
export interface PushedBlob {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/** A pushed single-platform image. */
export interface PushedImage {
  readonly manifestDigest: string;
  readonly config: PushedBlob;
  readonly layers: readonly PushedBlob[];
  /** config + layers, as the store reports sizes. */
  readonly sizeBytes: number;
}

/** A started registry; dispose (or stop) kills it and removes its storage. */
export interface OciRegistry extends AsyncDisposable {
  /** `127.0.0.1:<port>` of the front: what references name and insecure_registries lists. */
  readonly host: string;
  /** The front's requests so far, in order. */
  readonly requests: SeenRequest[];
  readonly faults: Faults;
  /** Changes how the front authenticates. */
  setAuth(auth: FrontAuth): void;
  /** Pushes an image (layers pushed as given, gzip'd tars unless mediaType says otherwise). */
  pushImage(repo: string, tag: string, image: ImageSpec): Promise<PushedImage>;
  /** Pushes an OCI index of several platform images under `tag`; returns the index digest. */
  pushIndex(
    repo: string,
    tag: string,
    images: readonly ImageSpec[],
  ): Promise<{ indexDigest: string; images: PushedImage[] }>;
  /** GET requests the front answered for a blob. */
  blobGets(digest: string): SeenRequest[];
  /** Stalled responses (faults.stall) whose client has not gone away yet. */
  openStalls(): number;
  stop(): Promise<void>;
}

/** An image to push. */
export interface ImageSpec {
  readonly layers: readonly Buffer[];
  readonly architecture?: string;
  readonly os?: string;
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly cmd?: readonly string[];
}

/** A gzip'd POSIX tar of regular files (enough to make real layers). */
export function tarLayer(files: Readonly<Record<string, string | Buffer>>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    const data = typeof content === "string" ? Buffer.from(content) : content;
    const h = Buffer.alloc(512);
    h.write(name, 0, 100);
    h.write("0000644\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
    h.write(
      `${Math.floor(Date.UTC(2024, 0, 1) / 1000)
        .toString(8)
        .padStart(11, "0")}\0`,
      136,
    );
    h.write("        ", 148);
    h.write("0", 156);
    h.write("ustar\0", 257);
    h.write("00", 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A layer of `bytes` incompressible bytes (random data in one file). */
export function randomLayer(bytes: number): Buffer {
  return tarLayer({ "data.bin": randomBytes(bytes) });
}

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * Starts docker-registry on a free loopback port and the front before it.
 * Always stop it (await using, or stop() in afterAll): the registry is a child process.
 */
export async function startOciRegistry(options: { auth?: FrontAuth } = {}): Promise<OciRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "vmm-oci-registry-"));
  const backendPort = await freePort();
  writeFileSync(
    join(dir, "config.yml"),
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "http:",
      `  addr: 127.0.0.1:${backendPort}`,
      "",
    ].join("\n"),
  );
  let output = "";
  const child: ChildProcess = spawn(REGISTRY_BIN, ["serve", join(dir, "config.yml")], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  });
  child.stderr?.on("data", (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const backend = `http://127.0.0.1:${backendPort}`;
  let front: http.Server | undefined;
  const stop = async () => {
    if (front) {
      front.closeAllConnections();
      await new Promise<void>((r) => front!.close(() => r()));
    }
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${output}`);
      const ok = await fetch(`${backend}/v2/`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new Error(`docker-registry did not start within 10 s: ${output}`);
      await sleep(100);
    }
    let auth: FrontAuth = options.auth ?? { kind: "none" };
    const requests: SeenRequest[] = [];
    const faults: Faults = {
      corrupt: new Set(),
      cutAfter: new Map(),
      ignoreRange: false,
      shiftRange: false,
      stall: new Set(),
    };
    let openStalls = 0;
    const tokens = new Set<string>();
    front = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      const record = (status: number) =>
        requests.push({
          method: req.method ?? "",
          path: url.pathname,
          range: req.headers.range,
          status,
        });
      const expectBasic = (a: { username: string; password: string }) =>
        req.headers.authorization ===
        `Basic ${Buffer.from(`${a.username}:${a.password}`).toString("base64")}`;
      if (url.pathname === "/token") {
        if (auth.kind !== "bearer" || !expectBasic(auth)) {
          record(401);
          res.writeHead(401).end();
          return;
        }
        const token = randomBytes(16).toString("hex");
        tokens.add(token);
        record(200);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ token, expires_in: 300 }));
        return;
      }
      if (auth.kind === "basic" && !expectBasic(auth)) {
        record(401);
        res.writeHead(401, { "www-authenticate": 'Basic realm="test"' }).end();
        return;
      }
      if (auth.kind === "bearer") {
        const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
        if (!m || !tokens.has(m[1]!)) {
          const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(url.pathname)?.[1] ?? "";
          record(401);
          res
            .writeHead(401, {
              "www-authenticate": `Bearer realm="http://${host}/token",service="test-registry",scope="repository:${repo}:pull"`,
            })
            .end();
          return;
        }
      }
      const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname)?.[1];
      const headers = { ...req.headers };
      delete headers.authorization;
      if (digest && faults.ignoreRange) delete headers.range;
      const from = /^bytes=(\d+)-$/.exec(headers.range ?? "")?.[1];
      if (digest && faults.shiftRange && from !== undefined && Number(from) > 0) {
        headers.range = `bytes=${Number(from) - 1}-`;
      }
      const up = http.request(
        `${backend}${req.url}`,
        { method: req.method, headers, agent: false },
        (upRes) => {
          record(upRes.statusCode ?? 0);
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          if (!digest || req.method !== "GET") {
            upRes.pipe(res);
            return;
          }
          if (faults.stall.has(digest)) {
            openStalls++;
            upRes.pause();
            res.flushHeaders();
            res.on("close", () => {
              openStalls--;
              upRes.destroy();
            });
            return;
          }
          const cut = faults.cutAfter.get(digest);
          if (cut !== undefined) faults.cutAfter.delete(digest);
          let sent = 0;
          let flipped = false;
          let cutDone = false;
          upRes.on("data", (chunk: Buffer) => {
            if (cutDone) return;
            let out = chunk;
            if (faults.corrupt.has(digest) && !flipped && out.length > 0) {
              out = Buffer.from(out);
              out[out.length - 1]! ^= 0xff;
              flipped = true;
            }
            if (cut !== undefined && sent + out.length >= cut) {
              // Drop the connection mid-body once these bytes are out: never a clean end.
              cutDone = true;
              const socket = res.socket;
              res.write(out.subarray(0, cut - sent), () => setTimeout(() => socket?.destroy(), 20));
              sent = cut;
              upRes.destroy();
              return;
            }
            sent += out.length;
            res.write(out);
          });
          upRes.on("end", () => {
            if (!cutDone) res.end();
          });
        },
      );
      up.on("error", () => {
        // The upstream of a cut was destroyed on purpose: the cut drops the client itself.
        if (!res.writableEnded) setTimeout(() => res.destroy(), 20);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => front!.listen(0, "127.0.0.1", r));
    const host = `127.0.0.1:${(front.address() as AddressInfo).port}`;

    const putBlob = async (repo: string, bytes: Buffer): Promise<string> => {
      const digest = sha256(bytes);
      const start = await fetch(`${backend}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
      const loc = new URL(start.headers.get("location")!, backend);
      loc.searchParams.set("digest", digest);
      const put = await fetch(loc, {
        method: "PUT",
        body: bytes,
        headers: { "content-type": "application/octet-stream" },
      });
      if (put.status !== 201)
        throw new Error(`upload ${digest}: HTTP ${put.status} ${await put.text()}`);
      return digest;
    };
    const putManifest = async (repo: string, ref: string, mediaType: string, body: string) => {
      const res = await fetch(`${backend}/v2/${repo}/manifests/${ref}`, {
        method: "PUT",
        body,
        headers: { "content-type": mediaType },
      });
      if (res.status !== 201)
        throw new Error(`manifest ${repo}:${ref}: HTTP ${res.status} ${await res.text()}`);
      return sha256(body);
    };
    const pushPlatformImage = async (
      repo: string,
      image: ImageSpec,
    ): Promise<PushedImage & { manifest: string }> => {
      const layers: PushedBlob[] = [];
      const diffIds: string[] = [];
      for (const l of image.layers) {
        layers.push({
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: await putBlob(repo, l),
          size: l.length,
        });
        let raw = l;
        try {
          raw = (await import("node:zlib")).gunzipSync(l);
        } catch {}
        diffIds.push(sha256(raw));
      }
      const configBytes = Buffer.from(
        JSON.stringify({
          architecture: image.architecture ?? "amd64",
          os: image.os ?? "linux",
          created: "2024-01-01T00:00:00Z",
          config: {
            Env: image.env ?? ["PATH=/bin"],
            Cmd: image.cmd ?? ["/bin/sh"],
            ...(image.workingDir !== undefined && { WorkingDir: image.workingDir }),
            ...(image.user !== undefined && { User: image.user }),
          },
          rootfs: { type: "layers", diff_ids: diffIds },
          history: [],
        }),
      );
      const config: PushedBlob = {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: await putBlob(repo, configBytes),
        size: configBytes.length,
      };
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config,
        layers,
      });
      const manifestDigest = await putManifest(
        repo,
        sha256(manifest),
        "application/vnd.oci.image.manifest.v1+json",
        manifest,
      );
      return {
        manifestDigest,
        manifest,
        config,
        layers,
        sizeBytes: config.size + layers.reduce((n, l) => n + l.size, 0),
      };
    };

    const registry: OciRegistry = {
      host,
      requests,
      faults,
      setAuth(a) {
        auth = a;
      },
      async pushImage(repo, tag, image) {
        const pushed = await pushPlatformImage(repo, image);
        await putManifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", pushed.manifest);
        const { manifest: _, ...rest } = pushed;
        return rest;
      },
      async pushIndex(repo, tag, images) {
        const pushed = [];
        for (const image of images) pushed.push(await pushPlatformImage(repo, image));
        const index = JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: pushed.map((p, i) => ({
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            digest: p.manifestDigest,
            size: Buffer.byteLength(p.manifest),
            platform: {
              architecture: images[i]!.architecture ?? "amd64",
              os: images[i]!.os ?? "linux",
            },
          })),
        });
        const indexDigest = await putManifest(
          repo,
          tag,
          "application/vnd.oci.image.index.v1+json",
          index,
        );
        return { indexDigest, images: pushed.map(({ manifest: _, ...rest }) => rest) };
      },
      blobGets(digest) {
        return requests.filter((r) => r.method === "GET" && r.path.endsWith(`/blobs/${digest}`));
      },
      openStalls: () => openStalls,
      stop,
      [Symbol.asyncDispose]: stop,
    };
    return registry;
  } catch (err) {
    await stop();
    throw err;
  }
}

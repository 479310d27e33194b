import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The bundled simulator (built by the vitest global setup). */
export const fcSimBin = resolve(import.meta.dirname, "../dist/fc-sim.mjs");
export const jailerSimBin = resolve(import.meta.dirname, "../dist/jailer-sim.mjs");

/** A kernel path: the real test kernel when present, else a file with an ELF header (fc-sim only checks the magic). */
export function testKernel(dir: string): string {
  const k = process.env.FC_TEST_KERNEL ?? "/root/.cache/vmm-tools/kernel/vmlinux";
  if (existsSync(k)) return k;
  const fake = join(dir, "vmlinux");
  writeFileSync(fake, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]));
  return fake;
}

export function tempDir(prefix = "fcs-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export type Reply = { status: number; body: unknown; text: string };

/** One request over the API socket, always with Content-Length. */
export function request(
  sock: string,
  method: string,
  path: string,
  body?: unknown,
  rawBody?: string,
): Promise<Reply> {
  const data = rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
  return new Promise((res, rej) => {
    const req = http.request(
      {
        socketPath: sock,
        method,
        path,
        agent: false,
        headers:
          data === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) },
      },
      (r) => {
        let text = "";
        r.on("data", (c) => {
          text += c;
        });
        r.on("end", () => {
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          res({ status: r.statusCode ?? 0, body: parsed, text });
        });
      },
    );
    req.on("error", rej);
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(data);
  });
}

/** Sends raw bytes and returns the status of the first response. */
export function rawRequest(sock: string, raw: string): Promise<{ status: number; text: string }> {
  return new Promise((res, rej) => {
    const s = net.connect(sock);
    let text = "";
    const timer = setTimeout(() => s.destroy(), 3000);
    const done = (): void => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) res({ status: Number(m[1]), text });
      else rej(new Error(`no HTTP response, got ${JSON.stringify(text)}`));
    };
    s.on("data", (c) => {
      text += c;
      if (/\r\n\r\n/.test(text)) {
        const cl = /Content-Length: (\d+)/i.exec(text);
        const headEnd = text.indexOf("\r\n\r\n") + 4;
        if (!cl || text.length - headEnd >= Number(cl[1])) s.destroy();
      }
    });
    s.on("close", done);
    s.on("error", () => {});
    s.write(raw);
  });
}

export type Vm = {
  proc: ChildProcess;
  dir: string;
  sock: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  call: (method: string, path: string, body?: unknown) => Promise<Reply>;
  kill: () => Promise<void>;
  /** The last 4000 characters of fc-sim's stdout + stderr (console and log). */
  output: () => string;
};

/** Options of {@link startVm}. */
export type StartVmOptions = {
  bin?: string;
  dir?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wait for the API socket (default true). */
  waitApi?: boolean;
};

/** Spawns fc-sim (or `bin`) with cwd = dir and `--api-sock api.sock`, waits until `GET /` answers. */
export async function startVm(o: StartVmOptions = {}): Promise<Vm> {
  const dir = o.dir ?? tempDir();
  const sock = join(dir, "api.sock");
  const args = ["--api-sock", "api.sock", ...(o.args ?? [])];
  const proc = spawn(o.bin ?? fcSimBin, args, {
    cwd: dir,
    env: { ...process.env, ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (c: Buffer): void => {
    output = (output + c.toString()).slice(-4000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.once("exit", (code, signal) => r({ code, signal })),
  );
  const vm: Vm = {
    proc,
    dir,
    sock,
    exited,
    output: () => output,
    call: (m, p, b) => request(sock, m, p, b),
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
  if (o.waitApi === false) return vm;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(
        `${o.bin ?? "fc-sim"} exited (${proc.exitCode ?? proc.signalCode}) before its API was up: ${output}`,
      );
    if (existsSync(sock)) {
      try {
        if ((await vm.call("GET", "/")).status === 200) return vm;
      } catch {
        // not accepting yet
      }
    }
    if (Date.now() > deadline) {
      await vm.kill();
      throw new Error("API socket did not come up within 15 s");
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Makes an 8 MiB sparse file at `path` (content is irrelevant to the API phase of both fc-sim and Firecracker). */
export function makeRootfs(path: string): void {
  writeFileSync(path, "");
  truncateSync(path, 8 * 1024 * 1024);
}

// An in-memory sandbox.v1 daemon for the CLI's integration tests: real gRPC
// (connect-node, HTTP/2) on a real Unix socket, behaving as the wire spec
// (shared/spec/sandbox-v1-wire.md) says for states, events and status codes.
// Workloads are scripted instead of executed (see runScript and execScript).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Http2Session } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  type CreateSandboxRequest,
  type ExecInput,
  type ExecRequest,
  type RunRequest,
  type SandboxEvent,
  SandboxEventSchema,
  SandboxService,
  SandboxSnapshotService,
  type SnapshotSummary,
  SnapshotSummarySchema,
  type TerminalSize,
} from "@vmm/proto";
import { isEventAction, isSandboxState } from "@vmm/proto/wire";

/** The version the fake daemon reports in the vmm-version header. */
export const fakeDaemonVersion = "9.8.7-fake";

/** The fake's page size (default and cap): small, so every CLI listing of 3+ items pages. */
export const FAKE_PAGE_SIZE = 2;

/** Pages like the daemon (page_size capped, opaque token); the token is an offset here. */
function fakePage<T>(
  items: readonly T[],
  req: { pageSize: number; pageToken: string },
): { items: T[]; nextPageToken: string } {
  const start = req.pageToken === "" ? 0 : Number(req.pageToken.replace(/^off-/, ""));
  if (!Number.isInteger(start) || !req.pageToken.match(/^(off-\d+)?$/)) {
    throw new ConnectError("page_token: is not a page token of this daemon", Code.InvalidArgument);
  }
  const size = req.pageSize === 0 ? FAKE_PAGE_SIZE : Math.min(req.pageSize, FAKE_PAGE_SIZE);
  const end = start + size;
  return { items: items.slice(start, end), nextPageToken: end < items.length ? `off-${end}` : "" };
}

interface FakeSandbox {
  id: string;
  state: string;
  labels: Record<string, string>;
  ip: string;
  createdAt: bigint;
  readyAt: bigint;
  error: string;
  spec: string;
  vcpus: number;
  memoryMib: bigint;
  kernel: string;
  lastExitCode: number;
  lastExitedAt: bigint;
}

/** What the fake saw, for assertions. */
export interface FakeRecord {
  creates: CreateSandboxRequest[];
  runs: RunRequest[];
  execInits: ExecRequest[];
  execStdin: Buffer[];
  resizes: TerminalSize[];
  authorization: (string | null)[];
  stops: { id: string; timeoutSeconds: number }[];
  /** Exec calls that ended because the client cancelled them. */
  execCancelled: number;
}

/** A running fake daemon; close() stops it and removes its temp dir. */
export interface FakeDaemon {
  readonly socket: string;
  readonly dir: string;
  readonly record: FakeRecord;
  /** "127.0.0.1:PORT" of the same service over plain TCP. */
  readonly tcpAddress: string;
  /** How many Events streams are open. */
  subscriberCount(): number;
  /** Adds a sandbox directly (state as given). */
  seed(id: string, state: string, labels?: Record<string, string>): void;
  /** Adds a snapshot directly. */
  seedSnapshot(id: string, sandboxId: string, name: string): void;
  close(): Promise<void>;
}

/**
 * Starts the fake on a fresh temp socket.
 * @param bootDelayMs how long "starting" lasts after Create (kernel "bad" fails the boot instead)
 */
export async function startFakeDaemon(opts: { bootDelayMs?: number } = {}): Promise<FakeDaemon> {
  const bootDelayMs = opts.bootDelayMs ?? 300;
  const dir = mkdtempSync(join(tmpdir(), "vmm-cli-test-"));
  const socket = join(dir, "vmm.sock");
  const sandboxes = new Map<string, FakeSandbox>();
  const snapshots = new Map<string, SnapshotSummary>();
  const subscribers = new Set<(ev: SandboxEvent) => void>();
  const timers = new Set<NodeJS.Timeout>();
  const record: FakeRecord = {
    creates: [],
    runs: [],
    execInits: [],
    execStdin: [],
    resizes: [],
    authorization: [],
    stops: [],
    execCancelled: 0,
  };
  let seq = 0;
  const now = () => BigInt(Math.floor(Date.now() / 1000));

  const emit = (sandboxId: string, action: string, attributes: Record<string, string> = {}) => {
    const ev = create(SandboxEventSchema, {
      sandboxId,
      action,
      attributes,
      timestamp: BigInt(Date.now()) * 1_000_000n,
    });
    for (const s of subscribers) s(ev);
  };
  const get = (id: string): FakeSandbox => {
    const sb = sandboxes.get(id);
    if (!sb) throw new ConnectError(`sandbox ${id} not found`, Code.NotFound);
    return sb;
  };
  const setState = (
    sb: FakeSandbox,
    state: string,
    action: string,
    attrs?: Record<string, string>,
  ) => {
    sb.state = state;
    emit(sb.id, action, attrs);
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const addSandbox = (
    id: string,
    state: string,
    labels: Record<string, string>,
    extra: Partial<FakeSandbox> = {},
  ) => {
    const n = ++seq;
    const sb: FakeSandbox = {
      id,
      state,
      labels,
      ip: `10.200.0.${n + 1}`,
      createdAt: now() - 5n,
      readyAt: state === "ready" ? now() : 0n,
      error: "",
      spec: "",
      vcpus: 1,
      memoryMib: 256n,
      kernel: "vmlinux",
      lastExitCode: 0,
      lastExitedAt: 0n,
      ...extra,
    };
    sandboxes.set(id, sb);
    return sb;
  };

  const validateLabels = (labels: Record<string, string>) => {
    if (Object.keys(labels).some((k) => k === ""))
      throw new ConnectError("labels: empty key", Code.InvalidArgument);
  };
  const matches = (labels: Record<string, string>, want: Record<string, string>) =>
    Object.entries(want).every(([k, v]) => labels[k] === v);

  const routes = (router: ConnectRouter) => {
    router.service(SandboxService, {
      async create(req) {
        record.creates.push(req);
        if (req.image !== "")
          throw new ConnectError("image: OCI images are not supported", Code.Unimplemented);
        validateLabels(req.labels);
        const spec = JSON.stringify({
          k: req.kernel,
          r: req.rootfs,
          l: req.labels,
          c: req.cmd,
          v: req.limits?.vcpus ?? 0,
        });
        const id = req.id || `sb-${(++seq).toString(16).padStart(8, "0")}`;
        const existing = sandboxes.get(id);
        if (existing) {
          if (existing.spec !== spec)
            throw new ConnectError(
              `sandbox ${id} exists with a different spec`,
              Code.AlreadyExists,
            );
          return { id, ipAddress: existing.ip, state: "starting" };
        }
        const sb = addSandbox(
          id,
          "starting",
          { ...req.labels },
          {
            spec,
            vcpus: req.limits?.vcpus || 1,
            memoryMib: req.limits?.memoryMib || 256n,
            kernel: req.kernel || "vmlinux",
          },
        );
        if (req.network?.mode === "none") sb.ip = "";
        emit(id, "created");
        later(bootDelayMs, () => {
          if (sandboxes.get(id) !== sb || sb.state !== "starting") return;
          if (req.kernel === "bad") {
            sb.error = "kernel panic: bad kernel";
            setState(sb, "failed", "failed", { error: sb.error });
          } else {
            sb.readyAt = now();
            setState(sb, "ready", "ready");
          }
        });
        return { id, ipAddress: sb.ip, state: "starting" };
      },
      async *run(req, ctx) {
        record.runs.push(req);
        const sb = get(req.id);
        if (sb.state !== "ready")
          throw new ConnectError(
            `sandbox ${req.id} is ${sb.state}, not ready`,
            Code.FailedPrecondition,
          );
        setState(sb, "running", "running");
        let code = 0;
        try {
          for (const out of runScript(req)) {
            if ("sleep" in out) {
              await sleep(out.sleep, undefined, { signal: ctx.signal });
              if (req.timeoutSeconds > 0 && out.sleep >= req.timeoutSeconds * 1000) {
                throw new ConnectError(
                  `command timed out after ${req.timeoutSeconds}s`,
                  Code.DeadlineExceeded,
                );
              }
              continue;
            }
            if (out.stream === "exit") code = out.exitCode;
            yield out;
          }
        } finally {
          sb.lastExitCode = code;
          sb.lastExitedAt = now();
          if (sandboxes.get(sb.id) === sb && (sb.state as string) === "running")
            setState(sb, "ready", "idle", { exit_code: String(code) });
        }
      },
      async *exec(inputs, ctx) {
        const it = inputs[Symbol.asyncIterator]();
        const first = await it.next();
        if (first.done || first.value.payload.case !== "init") {
          throw new ConnectError("the first ExecInput must carry init", Code.InvalidArgument);
        }
        const init = first.value.payload.value;
        record.execInits.push(init);
        const sb = get(init.id);
        if (sb.state !== "ready")
          throw new ConnectError(
            `sandbox ${init.id} is ${sb.state}, not ready`,
            Code.FailedPrecondition,
          );
        yield* execScript(init, it, record, ctx.signal);
      },
      async stop(req) {
        record.stops.push({ id: req.id, timeoutSeconds: req.timeoutSeconds });
        const sb = get(req.id);
        if (sb.state !== "stopped") {
          setState(sb, "stopping", "stopping");
          setState(sb, "stopped", "stopped");
        }
        return {};
      },
      async remove(req) {
        const sb = get(req.id);
        if (sb.state === "running" && !req.force) {
          throw new ConnectError(
            `sandbox ${req.id} is running a workload`,
            Code.FailedPrecondition,
          );
        }
        sandboxes.delete(req.id);
        emit(req.id, "removed");
        return {};
      },
      async inspect(req) {
        const sb = get(req.id);
        return {
          id: sb.id,
          state: sb.state,
          labels: sb.labels,
          limits: { vcpus: sb.vcpus, memoryMib: sb.memoryMib },
          ...(sb.ip
            ? {
                network: {
                  ipAddress: sb.ip,
                  gateway: "10.200.0.1",
                  tapName: "tap0",
                  guestIp: "172.16.0.2",
                  netns: `vmm-${sb.id}`,
                },
              }
            : {}),
          createdAt: sb.createdAt,
          readyAt: sb.readyAt,
          error: sb.error,
          kernel: sb.kernel,
          createdFrom: "boot",
          lastExitCode: sb.lastExitCode,
          lastExitedAt: sb.lastExitedAt,
        };
      },
      async list(req) {
        if (req.state !== "" && !isSandboxState(req.state)) {
          throw new ConnectError(`state: unknown state "${req.state}"`, Code.InvalidArgument);
        }
        const out = [...sandboxes.values()].filter(
          (s) => (req.state === "" || s.state === req.state) && matches(s.labels, req.labels),
        );
        const page = fakePage(out, req);
        return {
          sandboxes: page.items.map((s) => ({
            id: s.id,
            state: s.state,
            labels: s.labels,
            ipAddress: s.ip,
            createdAt: s.createdAt,
          })),
          nextPageToken: page.nextPageToken,
        };
      },
      async *events(req, ctx) {
        if (req.action !== "" && !isEventAction(req.action)) {
          throw new ConnectError(`action: unknown action "${req.action}"`, Code.InvalidArgument);
        }
        const queue: SandboxEvent[] = [];
        let wake: (() => void) | undefined;
        const sub = (ev: SandboxEvent) => {
          if (
            (req.id === "" || ev.sandboxId === req.id) &&
            (req.action === "" || ev.action === req.action)
          ) {
            queue.push(ev);
            wake?.();
          }
        };
        subscribers.add(sub);
        const aborted = new Promise<void>((resolve) =>
          ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        try {
          while (!ctx.signal.aborted) {
            const ev = queue.shift();
            if (ev) {
              yield ev;
              continue;
            }
            await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
          }
        } finally {
          subscribers.delete(sub);
        }
      },
    });
    router.service(SandboxSnapshotService, {
      async checkpoint(req) {
        const sb = get(req.sandboxId);
        if (sb.state !== "ready")
          throw new ConnectError(
            `sandbox ${sb.id} is ${sb.state}, not ready`,
            Code.FailedPrecondition,
          );
        const id = `snap-${(++seq).toString(16).padStart(8, "0")}`;
        const createdAt = new Date().toISOString();
        snapshots.set(
          id,
          create(SnapshotSummarySchema, {
            id,
            sandboxId: sb.id,
            name: req.name,
            labels: req.labels,
            snapshotDir: join(dir, "snapshots", id),
            createdAt,
            usable: true,
            sizeBytes: 268435456n,
          }),
        );
        emit(sb.id, "checkpointed", { snapshot_id: id });
        return { snapshotId: id, snapshotDir: join(dir, "snapshots", id), createdAt };
      },
      async restore(req) {
        const snap = snapshots.get(req.snapshotId);
        if (!snap) throw new ConnectError(`snapshot ${req.snapshotId} not found`, Code.NotFound);
        const id = req.id || `sb-${(++seq).toString(16).padStart(8, "0")}`;
        if (sandboxes.has(id))
          throw new ConnectError(`sandbox ${id} already exists`, Code.AlreadyExists);
        const sb = addSandbox(id, "ready", { ...req.labels });
        emit(id, "restored", { snapshot_id: snap.id });
        return { id, ipAddress: sb.ip };
      },
      async listSnapshots(req) {
        const page = fakePage(
          [...snapshots.values()].filter(
            (s) =>
              (req.sandboxId === "" || s.sandboxId === req.sandboxId) &&
              matches(s.labels, req.labels),
          ),
          req,
        );
        return { snapshots: page.items, nextPageToken: page.nextPageToken };
      },
      async deleteSnapshot(req) {
        if (!snapshots.delete(req.snapshotId))
          throw new ConnectError(`snapshot ${req.snapshotId} not found`, Code.NotFound);
        return {};
      },
    });
  };

  // Like the real daemon: the version header on every response; record the bearer token.
  const versionHeader: Interceptor = (next) => async (req) => {
    record.authorization.push(req.header.get("authorization"));
    const res = await next(req);
    res.header.set("vmm-version", fakeDaemonVersion);
    return res;
  };
  const handler = connectNodeAdapter({ routes, interceptors: [versionHeader] });
  const server = createServer(handler);
  const tcpServer = createServer(handler);
  const sessions = new Set<Http2Session>();
  for (const srv of [server, tcpServer]) {
    srv.on("session", (s) => {
      sessions.add(s);
      s.on("close", () => sessions.delete(s));
    });
  }
  await new Promise<void>((resolve, reject) => {
    tcpServer.once("error", reject);
    tcpServer.listen(0, "127.0.0.1", () => resolve());
  });
  const tcpPort = (tcpServer.address() as { port: number }).port;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => resolve());
  });

  return {
    socket,
    dir,
    record,
    tcpAddress: `127.0.0.1:${tcpPort}`,
    subscriberCount: () => subscribers.size,
    seed(id, state, labels = {}) {
      addSandbox(id, state, labels);
    },
    seedSnapshot(id, sandboxId, name) {
      snapshots.set(
        id,
        create(SnapshotSummarySchema, {
          id,
          sandboxId,
          name,
          labels: {},
          snapshotDir: join(dir, "snapshots", id),
          createdAt: new Date(Date.now() - 120_000).toISOString(),
          usable: true,
          sizeBytes: 1024n,
        }),
      );
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      subscribers.clear();
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => tcpServer.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type RunStep =
  | { stream: string; data: Uint8Array; exitCode: number; done: boolean }
  | { sleep: number };

/**
 * The fake's workloads for Run:
 * - `echo ARGS…`: ARGS joined with spaces and a newline on stdout, exit 0
 * - `emit OUT_B64 ERR_B64 CODE`: the decoded bytes on stdout then stderr (interleaved in 3 chunks), exit CODE
 * - `env`: the request's env, working_dir, user and tty as JSON on stdout
 * - `sleep SECONDS`: waits (fails with DEADLINE_EXCEEDED past timeout_seconds)
 * - anything else: "CMD: not found" on stderr, exit 127
 */
function* runScript(req: RunRequest): Generator<RunStep> {
  const [cmd, ...args] = req.cmd;
  const out = (s: string | Uint8Array) => ({
    stream: "stdout",
    data: typeof s === "string" ? Buffer.from(s) : s,
    exitCode: 0,
    done: false,
  });
  const err = (s: string | Uint8Array) => ({
    stream: "stderr",
    data: typeof s === "string" ? Buffer.from(s) : s,
    exitCode: 0,
    done: false,
  });
  const exit = (code: number) => ({
    stream: "exit",
    data: new Uint8Array(0),
    exitCode: code,
    done: true,
  });
  switch (cmd) {
    case "echo":
      yield out(`${args.join(" ")}\n`);
      yield exit(0);
      return;
    case "emit": {
      const o = Buffer.from(args[0] ?? "", "base64");
      const e = Buffer.from(args[1] ?? "", "base64");
      const third = (b: Buffer, i: number) =>
        b.subarray(Math.floor((b.length * i) / 3), Math.floor((b.length * (i + 1)) / 3));
      for (let i = 0; i < 3; i++) {
        yield out(third(o, i));
        yield err(third(e, i));
      }
      yield exit(Number(args[2] ?? 0));
      return;
    }
    case "env":
      yield out(
        JSON.stringify({ env: req.env, workingDir: req.workingDir, user: req.user, tty: req.tty }),
      );
      yield exit(0);
      return;
    case "sleep":
      yield { sleep: Number(args[0] ?? 0) * 1000 };
      yield exit(0);
      return;
    default:
      yield err(`${cmd}: not found\n`);
      yield exit(127);
  }
}

/**
 * The fake's workloads for Exec:
 * - `cat`: echoes stdin to stdout until stdin closes (empty chunk), exit 0
 * - `tty-probe MARKER`: prints the initial size, writes MARKER (a file path) once started,
 *   prints each resize; exits 7 after the first resize, 130 on a 0x03 byte (a TTY's Ctrl-C)
 * - `wait`: runs until the call is cancelled
 */
async function* execScript(
  init: ExecRequest,
  it: AsyncIterator<ExecInput>,
  record: FakeRecord,
  signal: AbortSignal,
): AsyncGenerator<{ stream: string; data: Uint8Array; exitCode: number; done: boolean }> {
  const out = (s: string | Uint8Array) => ({
    stream: "stdout",
    data: typeof s === "string" ? Buffer.from(s) : s,
    exitCode: 0,
    done: false,
  });
  const exit = (code: number) => ({
    stream: "exit",
    data: new Uint8Array(0),
    exitCode: code,
    done: true,
  });
  const [cmd, ...args] = init.cmd;
  if (cmd === "tty-probe") {
    const size = init.ttySize;
    yield out(`size ${size?.width ?? 0}x${size?.height ?? 0}\r\n`);
    if (args[0]) writeFileSync(args[0], "started");
  }
  if (cmd === "wait") {
    await new Promise<void>((resolve) =>
      signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    record.execCancelled++;
    return;
  }
  for (;;) {
    const next = await it.next();
    if (next.done) break;
    const p = next.value.payload;
    if (p.case === "stdin") {
      record.execStdin.push(Buffer.from(p.value));
      if (p.value.length === 0 && cmd === "cat") break;
      if (cmd === "cat") yield out(p.value);
      if (cmd === "tty-probe" && p.value.includes(3)) {
        yield out("^C\r\n");
        yield exit(130);
        return;
      }
    } else if (p.case === "resize") {
      record.resizes.push(p.value);
      if (cmd === "tty-probe") {
        yield out(`resize ${p.value.width}x${p.value.height}\r\n`);
        yield exit(7);
        return;
      }
    }
  }
  yield exit(0);
}

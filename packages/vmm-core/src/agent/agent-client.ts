import { setTimeout as sleep } from "node:timers/promises";
import { DeadlineExceededError, InvalidArgumentError, isVmmError } from "../errors.js";
import { sanitizeGuestText } from "../internal/guest-text.js";
import { setLongTimeout } from "../internal/long-timeout.js";
import { AgentProcess, decodeExit } from "./agent-process.js";
import { AgentConnection, type GreetedStream } from "./connection.js";
import { type AgentEndpoint, bindAgentStream, connectAgent, describeEndpoint } from "./dial.js";
import { AgentProtocolError, AgentTooOldError, AgentUnavailableError } from "./errors.js";
import { decodeTlv, type Frame, readUint, TlvWriter } from "./frame.js";
import {
  FrameType,
  IDENTITY_HOSTNAME_PATTERN,
  IDENTITY_SEED_MAX_BYTES,
  IDENTITY_SEED_MIN_BYTES,
  IdentitySetTag,
  IdentityTag,
  InfoTag,
  MAX_FRAME_LENGTH,
  RunTag,
} from "./protocol.js";

/** What the agent reports about itself (HEALTH → INFO). */
export interface AgentInfo {
  readonly agentVersion: string;
  readonly protocolVersion: number;
  /** Random per agent start: a different value means the guest (or agent) restarted. */
  readonly bootId: string;
  /** Milliseconds since the agent started. */
  readonly uptimeMs: number;
  /** The agent's pid (1 when it is the guest's init). */
  readonly pid: number;
  readonly hostname: string;
  /** "init" (PID 1), "agent" (vsock, not init) or "unix" (simulator/test socket). */
  readonly mode: string;
}

/** A new identity for a VM restored from a snapshot (AgentClient.setIdentity). */
export interface AgentIdentity {
  /** 1–64 characters of [A-Za-z0-9-]. */
  readonly hostname: string;
  /** 16–512 random bytes for the guest's entropy pool (e.g. `crypto.getRandomValues`). */
  readonly seed: Uint8Array;
  /** Wall-clock time to set, Unix ms (e.g. `Date.now()`). Default: the clock is left alone. */
  readonly timeMs?: number;
}

/** How SET_IDENTITY's seed reached the guest kernel's pool. */
export type EntropyMethod =
  /** `ioctl(RNDADDENTROPY)`: mixed in and credited. */
  | "ioctl"
  /** Written to /dev/urandom (the ioctl failed): mixed in, not credited. */
  | "write"
  /** Not applied (simulated agent). */
  | "none";

/** What SET_IDENTITY did (IDENTITY_SET reply). */
export interface IdentityResult {
  /** The hostname health() reports from now on. */
  readonly hostname: string;
  /** The agent's new boot id, reported by health() from now on. */
  readonly bootId: string;
  /**
   * True when the agent runs as a host process (`--unix`, `--unix-dir`): it
   * changed nothing on the host, only recorded hostname and boot id.
   */
  readonly simulated: boolean;
  /** What was applied to the guest system (all false / "none" when simulated). */
  readonly applied: {
    readonly hostname: boolean;
    readonly entropy: EntropyMethod;
    readonly clock: boolean;
  };
}

/** Options of AgentClient. */
export interface AgentClientOptions {
  /** Where the agent listens. Required. */
  readonly endpoint: AgentEndpoint;
  /** Limit for connect + handshake + first reply of one operation, ms. Default 5000. */
  readonly requestTimeoutMs?: number;
  /**
   * After each operation, dial the next connection ahead (Firecracker's CONNECT
   * done, the agent's session started), so the next operation skips that
   * round trip. A spare is closed once it is {@link SPARE_MAX_AGE_MS} old
   * unused (the agent drops connections that stay silent for 10 s); the
   * operation after that dials. Call `close()` to release it. Default false.
   */
  readonly spareConnection?: boolean;
  /**
   * Age at which a spare is closed, ms (it is no longer used from then on, and an idle
   * sandbox then holds no connection). Default {@link SPARE_MAX_AGE_MS}; at most the agent's
   * 10 s limit.
   */
  readonly spareMaxAgeMs?: number;
}

/**
 * Grace the host gives the guest past a RUN's `timeoutMs` before it ends the
 * session itself, ms: 2 s + 10 % of the timeout, at most 60 s. It covers the
 * agent's kill, its output drain (≤ 50 ms idle) and the EXIT frame's trip.
 */
export function hostDeadlineGraceMs(timeoutMs: number): number {
  return Math.min(2000 + Math.ceil(timeoutMs / 10), 60_000);
}

/**
 * Aborts `deadline` (closing the session: its socket is bound to that signal)
 * with DeadlineExceededError once the process outlives its timeout plus the
 * grace; the timer ends with the connection.
 */
function armHostDeadline(
  conn: AgentConnection,
  deadline: AbortController,
  timeoutMs: number,
): void {
  const graceMs = hostDeadlineGraceMs(timeoutMs);
  const timer = setLongTimeout(() => {
    deadline.abort(
      new DeadlineExceededError(
        `the process did not exit within its timeout (${timeoutMs} ms) plus ${graceMs} ms: the agent did not end it, so the daemon closed the session`,
      ),
    );
  }, timeoutMs + graceMs);
  conn.onClosed(() => timer.clear());
}

/** Age after which a spare connection is dropped instead of used, ms (the agent waits 10 s for HELLO). */
export const SPARE_MAX_AGE_MS = 8000;

/** Options of AgentClient.waitReady. */
export interface WaitReadyOptions {
  /** Overall limit, ms. Default 10000. */
  readonly timeoutMs?: number;
  /** Limit of each health attempt, ms. Default 1000. */
  readonly attemptTimeoutMs?: number;
  /** First retry delay, ms (doubles up to `maxBackoffMs`). Default 5. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay, ms. Default 100. */
  readonly maxBackoffMs?: number;
  readonly signal?: AbortSignal;
}

/** Options of AgentClient.run. */
export interface RunOptions {
  /** Program and arguments; argv[0] is looked up in PATH. Required, non-empty. */
  readonly argv: readonly string[];
  /** Added to (and overriding) the default env (PATH, HOME, USER, LOGNAME, SHELL, TERM with a TTY). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory. Default: the user's home, else "/". */
  readonly cwd?: string;
  /** User name or uid (looked up in the guest's /etc/passwd). Default: the agent's user (root). */
  readonly user?: string | number;
  /** Run on a new pty of this size (stdout then carries all output). Default: pipes. */
  readonly tty?: { readonly cols: number; readonly rows: number };
  /**
   * Kill the process group after this many ms (exit reports timedOut).
   * Enforced by the agent; the host also closes the session, failing the
   * iteration with DeadlineExceededError, if no EXIT arrived
   * {@link hostDeadlineGraceMs} later (a guest that ignores it). Default: no limit.
   */
  readonly timeoutMs?: number;
  /** Give the process a stdin pipe (true) or /dev/null (false). Default true. */
  readonly stdin?: boolean;
  /** Aborting closes the session; the agent then kills the process. */
  readonly signal?: AbortSignal;
}

/**
 * Client of the in-guest agent (docs/agent-protocol.md). Stateless: each
 * operation opens its own connection, so calls may run concurrently and a
 * restored VM needs no reconnect logic beyond the next call.
 *
 * @example
 * const agent = new AgentClient({ endpoint: { kind: "vsock", udsPath: "vsock.sock" } });
 * await agent.waitReady({ timeoutMs: 5000, signal });
 * const proc = await agent.run({ argv: ["uname", "-a"] });
 * for await (const ev of proc) if ("exit" in ev) console.log(ev.exit.code);
 */
export class AgentClient {
  readonly endpoint: AgentEndpoint;
  readonly requestTimeoutMs: number;
  private readonly keepSpare: boolean;
  private readonly spareMaxAgeMs: number;
  /** The next operation's connection, dialed and greeted ahead; undefined when there is none. */
  private spare: Spare | undefined;
  private closed = false;

  constructor(options: AgentClientOptions) {
    this.endpoint = options.endpoint;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.keepSpare = options.spareConnection ?? false;
    this.spareMaxAgeMs = Math.min(options.spareMaxAgeMs ?? SPARE_MAX_AGE_MS, SPARE_MAX_AGE_MS);
  }

  /** Drops the spare connection and stops making new ones. Operations still work (dialing each time). */
  close(): void {
    this.closed = true;
    const spare = this.spare;
    this.spare = undefined;
    spare?.drop();
  }

  /**
   * Dials and greets the next operation's connection. Nothing of it outlives
   * the spare: the dial's deadline is a timer cleared when the greeting ends,
   * and a greeted spare is closed and forgotten when it reaches
   * `spareMaxAgeMs` or the agent closes it, so an idle client holds no socket,
   * timer or signal.
   */
  private refillSpare(): void {
    if (!this.keepSpare || this.closed || this.spare) return;
    const at = performance.now();
    const dial = new AbortController();
    const dialTimer = setTimeout(() => dial.abort(), this.requestTimeoutMs);
    dialTimer.unref();
    let greeted: GreetedStream | undefined;
    let expiry: NodeJS.Timeout | undefined;
    const release = () => {
      clearTimeout(expiry);
      greeted?.socket.off("close", forget);
    };
    const forget = () => {
      if (this.spare === spare) this.spare = undefined;
      release();
      greeted?.socket.destroy();
    };
    const ready = connectAgent(this.endpoint, dial.signal)
      .then((idle) => AgentConnection.greet(describeEndpoint(this.endpoint), idle, dial.signal))
      .then(
        (g) => {
          greeted = g;
          // Taken (or dropped) while being dialed: its new owner decides its fate.
          if (this.spare !== spare) return g;
          expiry = setTimeout(forget, Math.max(0, this.spareMaxAgeMs - (performance.now() - at)));
          expiry.unref();
          g.socket.once("close", forget);
          return g;
        },
        () => undefined,
      )
      .finally(() => clearTimeout(dialTimer));
    const spare: Spare = {
      ready,
      at,
      take: release,
      drop() {
        release();
        dial.abort();
        void discard(ready);
      },
    };
    this.spare = spare;
  }

  /**
   * Opens the connection of one operation and reads its first reply frame.
   * Uses the spare when there is a fresh one (waiting for it if it is still
   * being dialed: it started earlier than a new dial would). A spare that
   * turns out dead (it ends before any reply: the agent gave up waiting, or
   * the VM was restored) is replaced by a new dial; the request never reached
   * a live session, since a session that read it answers before anything else.
   */
  private async exchange(
    request: AgentRequest,
    signal: AbortSignal,
    startSignal: AbortSignal = signal,
  ): Promise<{ conn: AgentConnection; first: Frame | undefined }> {
    const spare = this.spare;
    this.spare = undefined;
    spare?.take();
    let got: { conn: AgentConnection; first: Frame | undefined } | undefined;
    if (spare && performance.now() - spare.at < this.spareMaxAgeMs) {
      const ready = await raceAbort(spare.ready, startSignal);
      if (ready) got = await this.onSpare(ready, request, signal, startSignal);
    } else spare?.drop();
    got ??= await this.onNewConnection(request, signal, startSignal);
    // Dialed once this operation is over, not during it: the guest forks a session per connection.
    if (this.keepSpare) got.conn.onClosed(() => this.refillSpare());
    return got;
  }

  /** The request over a greeted spare; undefined if the spare turned out dead. */
  private async onSpare(
    ready: GreetedStream,
    request: AgentRequest,
    signal: AbortSignal,
    startSignal: AbortSignal,
  ): Promise<{ conn: AgentConnection; first: Frame | undefined } | undefined> {
    let conn: AgentConnection;
    let first: Frame | undefined;
    try {
      const stream = bindAgentStream(ready, signal, startSignal);
      const name = describeEndpoint(this.endpoint);
      conn = await AgentConnection.start(name, stream, request, signal, startSignal, ready);
      requireVersion(conn, request.minVersion);
      first = await conn.readFrame();
    } catch (err) {
      ready.socket.destroy();
      if (signal.aborted || startSignal.aborted || !(err instanceof AgentUnavailableError))
        throw err;
      return undefined;
    }
    if (first === undefined) {
      conn.close();
      return undefined;
    }
    return { conn, first };
  }

  /** The request over a connection dialed now. */
  private async onNewConnection(
    request: AgentRequest,
    signal: AbortSignal,
    startSignal: AbortSignal,
  ): Promise<{ conn: AgentConnection; first: Frame | undefined }> {
    const conn = await AgentConnection.open(this.endpoint, request, signal, startSignal);
    try {
      requireVersion(conn, request.minVersion);
      return { conn, first: await conn.readFrame() };
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /**
   * Opens one operation that needs protocol `minVersion` and returns its
   * connection with the first reply frame (read within the request timeout,
   * or under `signal` alone when `startTimeout` is false). The caller owns
   * the connection (close it). Throws AgentTooOldError when the agent speaks
   * an older protocol (the request is then never served).
   * @private for AgentFiles.
   */
  async openOperation(
    request: { type: number; payload: Uint8Array; minVersion: number },
    signal: AbortSignal,
    startTimeout = true,
  ): Promise<{ conn: AgentConnection; first: Frame | undefined }> {
    const got = startTimeout
      ? await this.withRequestTimeout(signal, this.requestTimeoutMs, (s) =>
          this.exchange(request, signal, s),
        )
      : await this.exchange(request, signal);
    got.conn.markStarted();
    return got;
  }

  /** Asks the agent for its INFO. Throws AgentUnavailableError when nothing answers (retryable). */
  async health(signal?: AbortSignal): Promise<AgentInfo> {
    const payload = await this.request(FrameType.health, new Uint8Array(0), FrameType.info, signal);
    return decodeInfo(payload);
  }

  /**
   * Gives a VM restored from a snapshot its own identity: the guest sets the
   * hostname, adds `seed` to the kernel's entropy pool, sets the clock (if
   * `timeMs`) and regenerates the agent's boot id. A simulated agent
   * (`--unix`, `--unix-dir`) changes nothing on the host; it records
   * hostname and boot id for health() and says `simulated`.
   *
   * Throws InvalidArgumentError for a bad hostname, seed or time (nothing is
   * sent); AgentError `unimplemented` from agents before 0.2.0; AgentError
   * `internal` if a step failed in the guest (the message says which, and what
   * was already applied).
   */
  async setIdentity(identity: AgentIdentity, signal?: AbortSignal): Promise<IdentityResult> {
    const request = encodeIdentity(identity);
    const payload = await this.request(
      FrameType.setIdentity,
      request,
      FrameType.identitySet,
      signal,
    );
    return decodeIdentitySet(payload);
  }

  /** One request frame, one reply frame of type `expect` (its payload), then close. */
  private request(
    type: number,
    payload: Uint8Array,
    expect: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    return this.withRequestTimeout(signal, this.requestTimeoutMs, async (s) => {
      const { conn, first: frame } = await this.exchange({ type, payload }, s);
      try {
        if (!frame || frame.type !== expect) {
          throw new AgentProtocolError(
            `expected frame type 0x${expect.toString(16)}, got ${frame ? `type 0x${frame.type.toString(16)}` : "EOF"}`,
          );
        }
        return frame.payload;
      } finally {
        conn.close();
      }
    });
  }

  /**
   * Retries `health` with backoff until the agent answers (the guest boots).
   * Throws DeadlineExceededError naming the socket and the last failure, or the
   * signal's reason when aborted. Errors other than AgentUnavailableError
   * (e.g. a protocol mismatch) are thrown at once.
   */
  async waitReady(options: WaitReadyOptions = {}): Promise<AgentInfo> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const attemptMs = options.attemptTimeoutMs ?? 1000;
    const maxBackoff = options.maxBackoffMs ?? 100;
    let backoff = options.initialBackoffMs ?? 5;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    let last: unknown;
    const fail = () => {
      if (options.signal?.aborted) return options.signal.reason;
      const why = last instanceof Error ? last.message : "no attempt finished";
      return new DeadlineExceededError(
        `agent at ${describeEndpoint(this.endpoint)} not ready after ${timeoutMs} ms; last error: ${why}`,
        { cause: last },
      );
    };
    for (;;) {
      try {
        return await this.withRequestTimeout(signal, attemptMs, (s) => this.health(s));
      } catch (err) {
        if (signal.aborted) throw fail();
        if (!(err instanceof AgentUnavailableError)) throw err;
        last = err;
      }
      try {
        await sleep(backoff, undefined, { signal });
      } catch {
        throw fail();
      }
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  }

  /**
   * Starts a process and resolves once the agent reports it started (or that
   * it could not start: then the process's only event is an exit with
   * `error`). Throws AgentError (invalid_argument) for e.g. an unknown user.
   */
  async run(options: RunOptions): Promise<AgentProcess> {
    const payload = encodeRun(options);
    const outer = options.signal ?? new AbortController().signal;
    // The guest enforces timeoutMs, but the guest is untrusted: the host closes the session too.
    const timeoutMs = options.timeoutMs ?? 0;
    const deadline = timeoutMs > 0 ? new AbortController() : undefined;
    const session = deadline ? AbortSignal.any([outer, deadline.signal]) : outer;
    // The session lives under the caller's signal (and the host deadline); its start also has a time limit.
    const { conn: c, first } = await this.withRequestTimeout(outer, this.requestTimeoutMs, (s) =>
      this.exchange({ type: FrameType.run, payload }, session, s),
    );
    c.markStarted();
    try {
      if (first?.type === FrameType.started && first.payload.length === 4) {
        // Armed once the guest started the process (its own timer starts then too).
        if (deadline) armHostDeadline(c, deadline, timeoutMs);
        return new AgentProcess(c, readUint(first.payload));
      }
      if (first?.type === FrameType.exit)
        return new AgentProcess(c, undefined, decodeExit(first.payload));
      throw new AgentProtocolError(
        `expected STARTED or EXIT, got ${first ? `type 0x${first.type.toString(16)}` : "EOF"}`,
      );
    } catch (err) {
      c.close();
      throw err;
    }
  }

  /** Runs fn under `signal` plus a time limit; a timeout becomes AgentUnavailableError. */
  private async withRequestTimeout<T>(
    signal: AbortSignal | undefined,
    ms: number,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(ms);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      return await fn(combined);
    } catch (err) {
      if (timeout.aborted && !signal?.aborted) {
        throw new AgentUnavailableError(
          describeEndpoint(this.endpoint),
          `no answer within ${ms} ms`,
          { cause: isVmmError(err) ? err : undefined },
        );
      }
      throw err;
    }
  }
}

function checkString(field: string, v: string): string {
  if (v.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL");
  return v;
}

/** Encodes a RUN request's TLV payload, validating the options. */
function encodeRun(o: RunOptions): Uint8Array {
  if (o.argv.length === 0 || o.argv[0] === "") {
    throw new InvalidArgumentError("argv", "must name a program");
  }
  const w = new TlvWriter();
  for (const [i, a] of o.argv.entries()) w.string(RunTag.arg, checkString(`argv[${i}]`, a));
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (k === "" || k.includes("=")) throw new InvalidArgumentError(`env.${k}`, "invalid name");
    w.string(RunTag.env, checkString(`env.${k}`, `${k}=${v}`));
  }
  if (o.cwd !== undefined) w.string(RunTag.cwd, checkString("cwd", o.cwd));
  if (o.user !== undefined) {
    if (typeof o.user === "number" && (!Number.isInteger(o.user) || o.user < 0)) {
      throw new InvalidArgumentError("user", `uid must be a non-negative integer, got ${o.user}`);
    }
    w.string(RunTag.user, checkString("user", String(o.user)));
  }
  if (o.tty) {
    const { cols, rows } = o.tty;
    for (const [f, v] of [
      ["tty.cols", cols],
      ["tty.rows", rows],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 0xffff) {
        throw new InvalidArgumentError(f, `must be an integer 1..65535, got ${v}`);
      }
    }
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint16(0, cols);
    new DataView(b.buffer).setUint16(2, rows);
    w.bytes(RunTag.tty, b);
  }
  if (o.timeoutMs !== undefined && o.timeoutMs > 0) {
    if (!Number.isInteger(o.timeoutMs) || o.timeoutMs > 0xffffffff) {
      throw new InvalidArgumentError(
        "timeoutMs",
        `must be an integer ms ≤ 2^32-1, got ${o.timeoutMs}`,
      );
    }
    w.u32(RunTag.timeoutMs, o.timeoutMs);
  }
  if (o.stdin === false) w.u8(RunTag.stdin, 0);
  const payload = w.finish();
  if (payload.length + 1 > MAX_FRAME_LENGTH) {
    throw new InvalidArgumentError("argv", "argv + env + cwd exceed the 1 MiB request limit");
  }
  return payload;
}

/** Encodes a SET_IDENTITY request's TLV payload, validating it. */
function encodeIdentity(id: AgentIdentity): Uint8Array {
  if (typeof id.hostname !== "string" || !IDENTITY_HOSTNAME_PATTERN.test(id.hostname)) {
    throw new InvalidArgumentError(
      "hostname",
      `must be 1-64 characters of [A-Za-z0-9-], got ${JSON.stringify(id.hostname)}`,
    );
  }
  if (!(id.seed instanceof Uint8Array)) {
    throw new InvalidArgumentError("seed", "must be a Uint8Array");
  }
  if (id.seed.length < IDENTITY_SEED_MIN_BYTES || id.seed.length > IDENTITY_SEED_MAX_BYTES) {
    throw new InvalidArgumentError(
      "seed",
      `must be ${IDENTITY_SEED_MIN_BYTES}-${IDENTITY_SEED_MAX_BYTES} bytes, got ${id.seed.length}`,
    );
  }
  const w = new TlvWriter()
    .string(IdentityTag.hostname, id.hostname)
    .bytes(IdentityTag.seed, id.seed);
  if (id.timeMs !== undefined) {
    if (!Number.isSafeInteger(id.timeMs) || id.timeMs < 0) {
      throw new InvalidArgumentError(
        "timeMs",
        `must be a non-negative integer (Unix ms), got ${id.timeMs}`,
      );
    }
    w.u64(IdentityTag.timeMs, id.timeMs);
  }
  return w.finish();
}

/** Bound of each string field of INFO and IDENTITY_SET (hostname ≤ 64, boot id 32, versions), bytes. */
const GUEST_FIELD_MAX_BYTES = 256;

function decodeIdentitySet(payload: Uint8Array): IdentityResult {
  let hostname = "";
  let bootId = "";
  let simulated = false;
  let hostnameSet = false;
  let clockSet = false;
  let entropy = "";
  const text = (v: Uint8Array) => sanitizeGuestText(v, GUEST_FIELD_MAX_BYTES);
  for (const { tag, value } of decodeTlv(payload)) {
    if (tag === IdentitySetTag.hostname) hostname = text(value);
    else if (tag === IdentitySetTag.bootId) bootId = text(value);
    else if (tag === IdentitySetTag.simulated) simulated = readUint(value) !== 0;
    else if (tag === IdentitySetTag.hostnameSet) hostnameSet = readUint(value) !== 0;
    else if (tag === IdentitySetTag.entropy) entropy = text(value);
    else if (tag === IdentitySetTag.clockSet) clockSet = readUint(value) !== 0;
  }
  if (!bootId || !hostname)
    throw new AgentProtocolError("IDENTITY_SET without hostname or boot id");
  if (entropy !== "ioctl" && entropy !== "write" && entropy !== "none") {
    throw new AgentProtocolError(
      `IDENTITY_SET with unknown entropy method ${JSON.stringify(entropy)}`,
    );
  }
  return {
    hostname,
    bootId,
    simulated,
    applied: { hostname: hostnameSet, entropy, clock: clockSet },
  };
}

/** One request frame; `minVersion` (default 1) is the agent protocol it needs. */
interface AgentRequest {
  readonly type: number;
  readonly payload: Uint8Array;
  readonly minVersion?: number;
}

/** Throws AgentTooOldError (closing nothing: the caller does) if the agent agreed an older protocol. */
function requireVersion(conn: AgentConnection, minVersion = 1): void {
  if (conn.version < minVersion) throw new AgentTooOldError(conn.version);
}

/** A connection dialed ahead for the next operation (AgentClient `spareConnection`). */
interface Spare {
  /** The greeted stream; undefined if dialing or greeting failed. */
  readonly ready: Promise<GreetedStream | undefined>;
  /** performance.now() when the dial began. */
  readonly at: number;
  /** Called by the operation that uses it: cancels its expiry and close watch. */
  take(): void;
  /** Stops the dial, or closes the connection once it is greeted. */
  drop(): void;
}

/** Closes a spare whenever it is (or was) ready. */
async function discard(ready: Promise<GreetedStream | undefined>): Promise<void> {
  (await ready)?.socket.destroy();
}

/** `p`, or a rejection with the abort reason once `signal` aborts (then `p`'s stream is closed). */
function raceAbort(
  p: Promise<GreetedStream | undefined>,
  signal: AbortSignal,
): Promise<GreetedStream | undefined> {
  if (signal.aborted) {
    void discard(p);
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      void discard(p);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then((v) => {
      signal.removeEventListener("abort", onAbort);
      if (signal.aborted) v?.socket.destroy();
      else resolve(v);
    });
  });
}

function decodeInfo(payload: Uint8Array): AgentInfo {
  const info = {
    agentVersion: "",
    protocolVersion: 0,
    bootId: "",
    uptimeMs: 0,
    pid: 0,
    hostname: "",
    mode: "",
  };
  const text = (v: Uint8Array) => sanitizeGuestText(v, GUEST_FIELD_MAX_BYTES);
  for (const { tag, value } of decodeTlv(payload)) {
    if (tag === InfoTag.agentVersion) info.agentVersion = text(value);
    else if (tag === InfoTag.protocolVersion) info.protocolVersion = readUint(value);
    else if (tag === InfoTag.bootId) info.bootId = text(value);
    else if (tag === InfoTag.uptimeMs) info.uptimeMs = readUint(value);
    else if (tag === InfoTag.pid) info.pid = readUint(value);
    else if (tag === InfoTag.hostname) info.hostname = text(value);
    else if (tag === InfoTag.mode) info.mode = text(value);
  }
  if (!info.bootId) throw new AgentProtocolError("INFO without a boot id");
  return info;
}

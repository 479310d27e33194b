import {
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
} from "../errors.js";
import type { ImageReference } from "./image-reference.js";
import { registryApiHost } from "./image-reference.js";
import {
  type AuthChallenge,
  basicAuthorization,
  parseAuthChallenge,
  type RegistryCredentials,
} from "./registry-auth.js";

/** Manifest media types a pull accepts (OCI and Docker v2 schema 2, single and multi-platform). */
export const MANIFEST_MEDIA_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
] as const;

/** Largest manifest or index accepted, bytes (distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 << 20;

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Registries (host[:port]) spoken to over plain HTTP; every other one over HTTPS. Default none. */
  readonly insecureRegistries?: readonly string[];
  /** Credentials per registry host[:port] (as written in references; `docker.io` for Docker Hub). */
  readonly credentials?: ReadonlyMap<string, RegistryCredentials>;
  /**
   * Deadline of a manifest or token request, of a blob request's response headers, and the
   * longest silence inside a blob's body; default 30 000.
   */
  readonly requestTimeoutMs?: number;
  /** Sent as User-Agent. */
  readonly userAgent?: string;
}

/** A fetched manifest or index: its exact bytes (the digest is over them) and type. */
export interface FetchedManifest {
  readonly bytes: Buffer;
  readonly mediaType: string;
  /** `Docker-Content-Digest` as the registry sent it, if it did. */
  readonly headerDigest: string | undefined;
}

/** An open blob response. */
export interface BlobResponse {
  readonly body: ReadableStream<Uint8Array>;
  /** True when the registry honoured the Range request (206): the body starts at the offset asked. */
  readonly partial: boolean;
}

/**
 * A client of the OCI distribution API (v2) over Node's fetch: manifests and
 * blobs of one registry at a time, anonymous, HTTP basic or bearer-token auth
 * (the `WWW-Authenticate: Bearer realm,service,scope` flow, sending the
 * configured username/password to the token endpoint). Tokens are cached per
 * registry and scope until they expire. Every failure is a vmm-core error:
 * unknown repository or tag → NotFound, refused credentials → PermissionDenied,
 * unreachable or failing registry → Unavailable naming it.
 */
export class RegistryClient {
  private readonly insecure: ReadonlySet<string>;
  private readonly credentials: ReadonlyMap<string, RegistryCredentials>;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  /** `registry scope` → bearer token and when it expires (ms). */
  private readonly tokens = new Map<string, { token: string; expiresAtMs: number }>();

  constructor(options: RegistryClientOptions = {}) {
    this.insecure = new Set(options.insecureRegistries ?? []);
    this.credentials = options.credentials ?? new Map();
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? "vmm";
  }

  /** Fetches a manifest or index by tag or digest. */
  async getManifest(
    ref: ImageReference,
    tagOrDigest: string,
    signal: AbortSignal,
  ): Promise<FetchedManifest> {
    const res = await this.request(
      ref,
      `manifests/${tagOrDigest}`,
      { accept: MANIFEST_MEDIA_TYPES.join(", ") },
      AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
    );
    if (res.status === 404) {
      await res.body?.cancel();
      throw await this.notFound(ref, tagOrDigest, res);
    }
    await this.throwUnlessOk(ref, res, `manifest ${tagOrDigest}`);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > MAX_MANIFEST_BYTES) {
      await res.body?.cancel();
      throw new ResourceExhaustedError(
        `the manifest of ${ref.normalized} is ${declared} bytes, more than the ${MAX_MANIFEST_BYTES} accepted`,
      );
    }
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES + 1);
    if (bytes.length > MAX_MANIFEST_BYTES) {
      throw new ResourceExhaustedError(
        `the manifest of ${ref.normalized} is more than the ${MAX_MANIFEST_BYTES} bytes accepted`,
      );
    }
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    return {
      bytes,
      mediaType,
      headerDigest: res.headers.get("docker-content-digest") ?? undefined,
    };
  }

  /**
   * Opens a blob, from `offset` on when it is > 0 (an HTTP Range request; a
   * registry that ignores it answers 200 and the whole blob: `partial` false).
   * The response headers must arrive within the request timeout; the body is
   * bounded only by `signal`.
   */
  async openBlob(
    ref: ImageReference,
    digest: string,
    offset: number,
    signal: AbortSignal,
  ): Promise<BlobResponse> {
    const headersDeadline = new AbortController();
    const timer = setTimeout(
      () => headersDeadline.abort(new DOMException("registry too slow", "TimeoutError")),
      this.timeoutMs,
    );
    try {
      const res = await this.request(
        ref,
        `blobs/${digest}`,
        offset > 0 ? { range: `bytes=${offset}-` } : {},
        AbortSignal.any([signal, headersDeadline.signal]),
      );
      if (res.status === 404) {
        await res.body?.cancel();
        throw new NotFoundError(`blob of ${ref.normalized}`, digest);
      }
      if (res.status === 416 && offset > 0) {
        // The partial file is as long as the blob or longer: start over.
        await res.body?.cancel();
        return this.openBlob(ref, digest, 0, signal);
      }
      await this.throwUnlessOk(ref, res, `blob ${digest}`);
      if (!res.body)
        throw new UnavailableError(`registry ${ref.registry} sent no body for ${digest}`);
      if (res.status === 206 && contentRangeStart(res.headers.get("content-range")) !== offset) {
        // A 206 for other bytes than asked (a proxy's own range logic): cannot be appended.
        await res.body.cancel();
        if (offset === 0)
          throw new UnavailableError(
            `registry ${ref.registry} answered a plain GET of ${digest} with a partial response (${res.headers.get("content-range")})`,
          );
        return this.openBlob(ref, digest, 0, signal);
      }
      return {
        body: idleLimited(
          res.body,
          this.timeoutMs,
          () =>
            new UnavailableError(
              `registry ${ref.registry} sent no bytes of blob ${digest} for ${this.timeoutMs} ms; what arrived is kept for resuming`,
              { hint: "pull again; a later pull continues where this one stopped" },
            ),
        ),
        partial: res.status === 206,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The base URL of a registry's v2 API. */
  baseUrl(registry: string): string {
    const scheme = this.insecure.has(registry) ? "http" : "https";
    return `${scheme}://${registryApiHost(registry)}/v2/`;
  }

  private async request(
    ref: ImageReference,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Response> {
    const url = `${this.baseUrl(ref.registry)}${ref.repository}/${path}`;
    const scope = `repository:${ref.repository}:pull`;
    const creds = this.credentials.get(ref.registry);
    const cached = this.tokens.get(`${ref.registry} ${scope}`);
    let authorization: string | undefined =
      creds?.token !== undefined
        ? `Bearer ${creds.token}`
        : cached && cached.expiresAtMs > Date.now()
          ? `Bearer ${cached.token}`
          : undefined;
    for (let attempt = 0; ; attempt++) {
      const res = await this.fetch(ref.registry, url, {
        headers: {
          ...headers,
          "user-agent": this.userAgent,
          ...(authorization !== undefined && { authorization }),
        },
        signal,
      });
      if (res.status !== 401 || attempt > 0 || creds?.token !== undefined) return res;
      const challenge = parseAuthChallenge(res.headers.get("www-authenticate"));
      await res.body?.cancel();
      authorization = await this.authorize(ref, challenge, scope, signal);
    }
  }

  /** Answers a 401's challenge: a bearer token from the realm, or basic credentials. */
  private async authorize(
    ref: ImageReference,
    challenge: AuthChallenge | undefined,
    scope: string,
    signal: AbortSignal,
  ): Promise<string> {
    const creds = this.credentials.get(ref.registry);
    if (challenge?.scheme === "basic") {
      if (creds?.username === undefined || creds.password === undefined) {
        throw this.denied(ref, "it asks for a username and password and none are configured");
      }
      return basicAuthorization(creds.username, creds.password);
    }
    if (challenge?.scheme !== "bearer" || !challenge.params.realm) {
      throw this.denied(ref, "it answered 401 without a usable WWW-Authenticate challenge");
    }
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", challenge.params.scope ?? scope);
    const res = await this.fetch(ref.registry, realm.href, {
      headers: {
        "user-agent": this.userAgent,
        ...(creds?.username !== undefined &&
          creds.password !== undefined && {
            authorization: basicAuthorization(creds.username, creds.password),
          }),
      },
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
    });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.denied(
        ref,
        `its token service ${realm.origin} refused ${creds?.username !== undefined ? `the credentials of ${JSON.stringify(creds.username)}` : "anonymous access"} (HTTP ${res.status})`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new UnavailableError(
        `the token service ${realm.origin} of registry ${ref.registry} answered HTTP ${res.status}`,
      );
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse((await readLimited(res, MAX_SMALL_BODY)).toString("utf8")) as typeof body;
    } catch (err) {
      throw new UnavailableError(
        `the token service ${realm.origin} of registry ${ref.registry} sent no JSON`,
        { cause: err },
      );
    }
    const token = typeof body.token === "string" ? body.token : body.access_token;
    if (typeof token !== "string" || token === "") {
      throw new UnavailableError(
        `the token service ${realm.origin} of registry ${ref.registry} sent no token`,
      );
    }
    // Docker's token spec: at least 60 s when absent; renewed 10 s early.
    const ttlS = typeof body.expires_in === "number" ? body.expires_in : 60;
    this.tokens.set(`${ref.registry} ${scope}`, {
      token,
      expiresAtMs: Date.now() + Math.max(0, ttlS - 10) * 1000,
    });
    return `Bearer ${token}`;
  }

  private async fetch(registry: string, url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (init.signal?.aborted) {
        const reason = (init.signal as AbortSignal).reason;
        if (reason instanceof DOMException && reason.name === "TimeoutError") {
          throw new UnavailableError(
            `registry ${registry} did not answer within ${this.timeoutMs} ms (${new URL(url).origin})`,
            { cause: err },
          );
        }
        throw err;
      }
      const code = causeCode(err);
      const tlsHint =
        !this.insecure.has(registry) && /SSL|TLS|EPROTO|CERT/i.test(code)
          ? "; if it serves plain HTTP, list it in [images] insecure_registries"
          : "";
      throw new UnavailableError(
        `registry ${registry} is unreachable at ${new URL(url).origin} (${code})${tlsHint}`,
        { cause: err },
      );
    }
  }

  private async throwUnlessOk(ref: ImageReference, res: Response, what: string): Promise<void> {
    if (res.ok) return;
    const detail = await errorDetail(res);
    if (res.status === 401 || res.status === 403) {
      throw this.denied(ref, `it refused access to ${what} (HTTP ${res.status}${detail})`);
    }
    if (res.status === 429) {
      throw new UnavailableError(
        `registry ${ref.registry} rate-limited the pull of ${ref.normalized} (HTTP 429${detail}); try again later or configure credentials`,
      );
    }
    if (res.status >= 500) {
      throw new UnavailableError(
        `registry ${ref.registry} failed serving ${what} of ${ref.normalized} (HTTP ${res.status}${detail})`,
      );
    }
    throw new FailedPreconditionError(
      `registry ${ref.registry} answered HTTP ${res.status} for ${what} of ${ref.normalized}${detail}`,
    );
  }

  private async notFound(ref: ImageReference, tagOrDigest: string, res: Response): Promise<Error> {
    const codes = await errorCodes(res);
    if (codes.includes("NAME_UNKNOWN")) {
      return new NotFoundError("image repository", `${ref.registry}/${ref.repository}`);
    }
    return new NotFoundError(
      tagOrDigest.startsWith("sha256:") ? "image manifest" : "image tag",
      `${ref.registry}/${ref.repository}${tagOrDigest.startsWith("sha256:") ? "@" : ":"}${tagOrDigest}`,
    );
  }

  private denied(ref: ImageReference, why: string): PermissionDeniedError {
    return new PermissionDeniedError(
      `registry ${ref.registry} denied pulling ${ref.normalized}: ${why}`,
      {
        hint: `check [images.registries.${JSON.stringify(ref.registry)}] username/password or token (a private or missing repository may also answer this way)`,
      },
    );
  }
}

/** Largest token or error response read, bytes: a registry cannot make us buffer more. */
const MAX_SMALL_BODY = 64 << 10;

/** Reads at most `max` bytes of a response body, then cancels the rest. */
async function readLimited(res: Response, max: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
    }
  } finally {
    if (n >= max) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return Buffer.concat(chunks).subarray(0, max);
}

/** The distribution error codes of an error response body (`{"errors":[{"code":…}]}`). */
async function errorCodes(res: Response): Promise<string[]> {
  try {
    const body = JSON.parse((await readLimited(res, MAX_SMALL_BODY)).toString("utf8")) as {
      errors?: { code?: unknown }[];
    };
    return (body.errors ?? []).map((e) => String(e.code));
  } catch {
    return [];
  }
}

async function errorDetail(res: Response): Promise<string> {
  try {
    const text = (await readLimited(res, MAX_SMALL_BODY)).toString("utf8");
    const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = body.errors?.[0];
    return first ? `: ${String(first.code)} ${String(first.message ?? "")}`.trimEnd() : "";
  } catch {
    return "";
  }
}

/** The errno-style code at the bottom of a fetch failure's cause chain. */
function causeCode(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = e.cause;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The first byte of a `Content-Range: bytes <first>-<last>/<total>` header, or undefined. */
function contentRangeStart(header: string | null): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header?.trim() ?? "");
  return m ? Number(m[1]) : undefined;
}

/**
 * `body`, erroring with `stalled()` when no chunk arrives for `ms`: a registry
 * that stops sending mid-blob must not hold a pull (and its client) forever.
 */
function idleLimited(
  body: ReadableStream<Uint8Array>,
  ms: number,
  stalled: () => Error,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(stalled()), ms);
        });
        try {
          const r = await Promise.race([reader.read(), idle]);
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (err) {
          reader.cancel(err).catch(() => {});
          controller.error(err);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

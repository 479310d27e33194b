import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ImageService, SandboxService, SandboxSnapshotService } from "@vmm/proto";

const TOKEN_KEY = "vmm.token";

/** The bearer token the user typed, kept for this browser tab only (sessionStorage). */
export const token = {
  get(): string {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  },
  set(value: string): void {
    if (value === "") sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, value);
  },
};

/** The console's API clients: the daemon's Connect API under `/api` on the same origin. */
export interface Api {
  readonly sandboxes: Client<typeof SandboxService>;
  readonly snapshots: Client<typeof SandboxSnapshotService>;
  readonly images: Client<typeof ImageService>;
}

const bearer: Interceptor = (next) => (req) => {
  const t = token.get();
  if (t !== "") req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

/** Creates the clients (Connect protocol, binary messages, over fetch). */
export function createApi(): Api {
  const transport = createConnectTransport({
    baseUrl: new URL("/api", location.origin).href,
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return {
    sandboxes: createClient(SandboxService, transport),
    snapshots: createClient(SandboxSnapshotService, transport),
    images: createClient(ImageService, transport),
  };
}

/** True when the error means the token is missing or wrong. */
export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

/** True when the call was aborted by the console itself. */
export function isCanceled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  HostService,
  ImageService,
  SandboxFilesService,
  SandboxService,
  SandboxSnapshotService,
} from "@vmm/proto";
import { UsageError } from "./errors.js";

/** The daemon's default Unix socket. */
export const defaultSocket = "/run/vmm/vmm.sock";

/** How to reach the daemon: a Unix socket, or TCP (optionally TLS) with a bearer token. */
export type Endpoint =
  | { readonly kind: "unix"; readonly socket: string; readonly token?: string | undefined }
  | {
      readonly kind: "tcp";
      readonly address: string;
      readonly tls: boolean;
      /** PEM file with the CA that signed the daemon's certificate. */
      readonly ca?: string | undefined;
      readonly token?: string | undefined;
    };

/** The connection flags, as parsed. */
export interface ConnectionFlags {
  readonly socket?: string | undefined;
  readonly address?: string | undefined;
  readonly token?: string | undefined;
  readonly tls?: boolean;
  readonly ca?: string | undefined;
}

/**
 * Picks the endpoint: flags first, then VMM_SOCKET / VMM_ADDRESS / VMM_TOKEN,
 * then the default socket. --socket and --address together are a usage error;
 * --ca implies --tls.
 */
export function resolveEndpoint(
  flags: ConnectionFlags,
  env: Readonly<Record<string, string | undefined>>,
): Endpoint {
  if (flags.socket !== undefined && flags.address !== undefined) {
    throw new UsageError("--socket and --address are mutually exclusive");
  }
  const token = flags.token ?? (env.VMM_TOKEN || undefined);
  const address =
    flags.address ?? (flags.socket === undefined ? env.VMM_ADDRESS || undefined : undefined);
  if (address !== undefined) {
    if (!/^[^\s/]+:\d+$/.test(address) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(address)) {
      throw new UsageError(`--address wants HOST:PORT, got "${address}"`);
    }
    return {
      kind: "tcp",
      address,
      tls: flags.tls === true || flags.ca !== undefined,
      ca: flags.ca,
      token,
    };
  }
  if (flags.tls || flags.ca !== undefined) throw new UsageError("--tls and --ca need --address");
  return { kind: "unix", socket: flags.socket ?? (env.VMM_SOCKET || defaultSocket), token };
}

/** Adds `authorization: Bearer <token>` to every call. */
function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/**
 * HTTP/2 settings of the CLI's connections: a 4 MiB stream window and 1 MiB
 * frames, so `vmm cp` downloads are not held to one round trip per 64 KiB
 * (the daemon sets the same for uploads, `[grpc] http2_*`).
 */
const HTTP2_SETTINGS = { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 };

/**
 * A gRPC transport (HTTP/2) for the endpoint. For a Unix socket the HTTP/2
 * session dials the socket through `createConnection`; the URL's host is only
 * the :authority.
 */
export function createTransport(endpoint: Endpoint): Transport {
  const interceptors = endpoint.token ? [bearer(endpoint.token)] : [];
  if (endpoint.kind === "unix") {
    const socket = endpoint.socket;
    return createGrpcTransport({
      baseUrl: "http://localhost",
      interceptors,
      nodeOptions: { createConnection: () => netConnect(socket), settings: HTTP2_SETTINGS },
    });
  }
  const scheme = endpoint.tls ? "https" : "http";
  return createGrpcTransport({
    baseUrl: `${scheme}://${endpoint.address}`,
    interceptors,
    nodeOptions: {
      settings: HTTP2_SETTINGS,
      ...(endpoint.ca !== undefined && { ca: readFileSync(endpoint.ca) }),
    },
  });
}

/** The sandbox.v1 service clients over one transport. */
export interface Clients {
  readonly sandbox: Client<typeof SandboxService>;
  readonly snapshot: Client<typeof SandboxSnapshotService>;
  readonly host: Client<typeof HostService>;
  readonly files: Client<typeof SandboxFilesService>;
  readonly image: Client<typeof ImageService>;
}

/** Creates the service clients for a transport. */
export function createClients(transport: Transport): Clients {
  return {
    sandbox: createClient(SandboxService, transport),
    snapshot: createClient(SandboxSnapshotService, transport),
    host: createClient(HostService, transport),
    files: createClient(SandboxFilesService, transport),
    image: createClient(ImageService, transport),
  };
}

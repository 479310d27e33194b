import { isLoopbackHost, parseListenAddress } from "../http/listen-address.js";
import { registryCredentialsFromConfig } from "../images-config.js";
import { proxyFromConfig } from "../proxy/proxy-config.js";
import { resolveGroup } from "../socket-group.js";
import { ConfigError, type LoadedConfig } from "./load-config.js";

/**
 * Checks rules that span keys (types were checked while loading). Throws a
 * ConfigError naming the key.
 */
export function validateConfig({ config }: LoadedConfig): void {
  const g = config.grpc;
  if (!/^0?[0-7]{3}$/.test(g.socket_mode)) {
    throw new ConfigError(
      `grpc.socket_mode must be an octal file mode like "0660", got ${JSON.stringify(g.socket_mode)}`,
    );
  }
  if (g.socket_group !== "" && resolveGroup(g.socket_group) === undefined) {
    throw new ConfigError(
      `grpc.socket_group ${JSON.stringify(g.socket_group)} is not a known group; create it (groupadd) or name an existing group or gid`,
    );
  }
  if (g.tcp_addr !== "") {
    if (!/^.+:\d+$/.test(g.tcp_addr)) {
      throw new ConfigError(`grpc.tcp_addr must be "host:port", got ${JSON.stringify(g.tcp_addr)}`);
    }
    const tls = g.tls_cert !== "" || g.tls_key !== "";
    if (tls && (g.tls_cert === "" || g.tls_key === "")) {
      throw new ConfigError("grpc.tls_cert and grpc.tls_key must be set together");
    }
    if (g.auth_token === "" && g.tls_client_ca === "") {
      throw new ConfigError(
        `grpc.tcp_addr is set but neither grpc.auth_token nor grpc.tls_client_ca is: the TCP listener would be open to anyone${tls ? " (TLS encrypts but does not authenticate clients)" : ""}; set auth_token, or tls_client_ca for mutual TLS, or both`,
      );
    }
  }
  if (g.tls_client_ca !== "" && (g.tls_cert === "" || g.tls_key === "")) {
    throw new ConfigError(
      "grpc.tls_client_ca is set but grpc.tls_cert/tls_key are not: mutual TLS needs the server's own certificate and key too",
    );
  }
  if (g.max_event_streams_per_connection > g.max_event_streams) {
    throw new ConfigError(
      "grpc.max_event_streams_per_connection is larger than grpc.max_event_streams",
    );
  }
  validateHttp(config.http);
  if (config.firecracker.seccomp_filter !== "" && config.firecracker.no_seccomp) {
    throw new ConfigError(
      "firecracker.seccomp_filter and firecracker.no_seccomp exclude each other",
    );
  }
  // Reads the secret files too: a missing one is a startup error, not a failed pull later.
  registryCredentialsFromConfig(config);
  if (config.defaults.vcpus > config.limits.max_vcpus_per_sandbox) {
    throw new ConfigError("defaults.vcpus is larger than limits.max_vcpus_per_sandbox");
  }
  if (config.defaults.memory_mib > config.limits.max_memory_mib_per_sandbox) {
    throw new ConfigError("defaults.memory_mib is larger than limits.max_memory_mib_per_sandbox");
  }
  proxyFromConfig(config);
  // <data_dir>/sandboxes/<id, at most 48 chars>/vsock.sock_<agent port> must fit in sun_path.
  const longest =
    Buffer.byteLength(config.firecracker.data_dir) +
    "/sandboxes/".length +
    48 +
    `/vsock.sock_${config.agent.port}`.length;
  if (longest > 107) {
    throw new ConfigError(
      `firecracker.data_dir ${config.firecracker.data_dir} is too long: sandbox socket paths under it could reach ${longest} bytes and Unix sockets are limited to 107; use a shorter data_dir (at most ${107 - (longest - Buffer.byteLength(config.firecracker.data_dir))} bytes)`,
    );
  }
}

/** `[http]`: a parseable address, and a token unless only this machine can connect. */
function validateHttp(h: LoadedConfig["config"]["http"]): void {
  if (h.listen === "") return;
  const addr = parseListenAddress(h.listen);
  if (addr === undefined) {
    throw new ConfigError(
      `http.listen must be "host:port" (IPv6 in brackets, e.g. "[::1]:9090"), got ${JSON.stringify(h.listen)}`,
    );
  }
  if (h.auth_token === "" && !isLoopbackHost(addr.host)) {
    throw new ConfigError(
      `http.listen ${JSON.stringify(h.listen)} is not loopback-only and http.auth_token is empty: the ops listener (metrics, Connect API, console) would be open to anyone who can reach it; set http.auth_token (or VMM_HTTP_AUTH_TOKEN), or listen on 127.0.0.1`,
    );
  }
}

import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import { AccessTokens } from "./access-tokens.js";
import { type HttpProxy, type ProxyBackend, startHttpProxy } from "./http-proxy.js";
import { proxyFromConfig } from "./proxy-config.js";

/**
 * Starts the HTTP proxy `[proxy]` describes, over `backend`; undefined when
 * `proxy.listen` is empty or there is no sandbox backend. Its access-token
 * key lives in `firecracker.data_dir`.
 */
export async function startConfiguredProxy(
  config: Config,
  backend: ProxyBackend | undefined,
  logger: Logger,
): Promise<HttpProxy | undefined> {
  const settings = proxyFromConfig(config);
  if (!settings || !backend) return undefined;
  return startHttpProxy({
    settings,
    backend,
    tokens: await AccessTokens.open(config.firecracker.data_dir),
    ...(config.grpc.auth_token !== "" && { apiToken: config.grpc.auth_token }),
    logger: logger.child({ component: "proxy" }),
  });
}

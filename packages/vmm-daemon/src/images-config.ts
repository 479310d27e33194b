import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { ImageStoreOptions, RegistryCredentials } from "@vmm/core";
import { ConfigError } from "./config/load-config.js";
import type { Config } from "./config/schema.js";

/** The image store's directory under data_dir (an OCI image layout; docs/images.md). */
export function imageStoreDir(config: Config): string {
  return join(config.firecracker.data_dir, "oci");
}

/**
 * The registry credentials of `[images.registries."host"]`, secrets read from
 * their files now. Throws ConfigError for an entry that is not exactly one of
 * username + password(_file) or token(_file), or a file that cannot be read.
 */
export function registryCredentialsFromConfig(config: Config): Map<string, RegistryCredentials> {
  const out = new Map<string, RegistryCredentials>();
  for (const [host, e] of Object.entries(config.images.registries)) {
    const at = `images.registries.${JSON.stringify(host)}`;
    const secret = (key: "password" | "token"): string | undefined => {
      const inline = e[key];
      const file = e[`${key}_file`];
      if (inline !== undefined && file !== undefined) {
        throw new ConfigError(`${at}: set ${key} or ${key}_file, not both`);
      }
      if (file === undefined) return inline;
      if (!isAbsolute(file)) throw new ConfigError(`${at}.${key}_file must be an absolute path`);
      try {
        return readFileSync(file, "utf8").replace(/\r?\n$/, "");
      } catch (err) {
        throw new ConfigError(`${at}.${key}_file ${file}: ${(err as Error).message}`);
      }
    };
    const password = secret("password");
    const token = secret("token");
    const username = e.username;
    if (token !== undefined && (username !== undefined || password !== undefined)) {
      throw new ConfigError(`${at}: give either token or username + password, not both`);
    }
    if (token === undefined && (username === undefined || password === undefined)) {
      throw new ConfigError(`${at}: needs username and password (or password_file), or a token`);
    }
    out.set(host, token !== undefined ? { token } : { username: username!, password: password! });
  }
  return out;
}

/** The ImageStore options `[images]` sets (the daemon adds logger and isInUse). */
export function imageStoreOptionsFromConfig(
  config: Config,
): Pick<ImageStoreOptions, "dir" | "registry" | "maxLayerBytes"> {
  return {
    dir: imageStoreDir(config),
    registry: {
      insecureRegistries: config.images.insecure_registries,
      credentials: registryCredentialsFromConfig(config),
    },
    maxLayerBytes: config.images.max_layer_bytes,
  };
}

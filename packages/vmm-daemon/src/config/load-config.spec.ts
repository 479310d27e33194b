import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { renderExampleConfig } from "./example-config.js";
import { ConfigError, lineOf, loadConfig } from "./load-config.js";
import { envName, type KeySpec, schema } from "./schema.js";
import { validateConfig } from "./validate-config.js";

const repo = resolve(import.meta.dirname, "../../../..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const file = (toml: string) => {
  const dir = mkdtempSync(join(tmpdir(), "vmmcfg-"));
  dirs.push(dir);
  const f = join(dir, "c.toml");
  writeFileSync(f, toml);
  return f;
};

describe("loadConfig", () => {
  it("config.example.toml is the rendered schema: every key documented with its default", () => {
    expect(readFileSync(join(repo, "config.example.toml"), "utf8")).toBe(renderExampleConfig());
  });

  it("parsing config.example.toml yields exactly the defaults", () => {
    const { config, sources } = loadConfig(join(repo, "config.example.toml"), {});
    for (const [section, keys] of Object.entries(schema)) {
      for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) {
        const v = (config as unknown as Record<string, Record<string, unknown>>)[section]![key];
        if (spec.type.t === "path" && spec.default !== "")
          expect(v).toBe(resolve(repo, spec.default as string));
        else expect(v).toEqual(spec.default);
        expect(sources.get(`${section}.${key}`)).toBe("file");
      }
    }
  });

  it("reads the [firecracker.jailer] table and resolves relative paths against the file", () => {
    const f = file(
      '[firecracker]\ndata_dir = "data"\n[firecracker.jailer]\nenabled = true\nuid = 123\n',
    );
    const { config } = loadConfig(f, {});
    expect(config["firecracker.jailer"].enabled).toBe(true);
    expect(config["firecracker.jailer"].uid).toBe(123);
    expect(config.firecracker.data_dir).toBe(join(dirname(f), "data"));
  });

  it("lets VMM_<SECTION>_<KEY> override the file and records the source", () => {
    const f = file("[agent]\nport = 5000\n");
    const { config, sources } = loadConfig(f, {
      VMM_AGENT_PORT: "6000",
      VMM_NETWORK_DNS: "8.8.8.8, 9.9.9.9",
      VMM_FIRECRACKER_JAILER_ENABLED: "true",
    });
    expect(config.agent.port).toBe(6000);
    expect(sources.get("agent.port")).toBe("env");
    expect(config.network.dns).toEqual(["8.8.8.8", "9.9.9.9"]);
    expect(config["firecracker.jailer"].enabled).toBe(true);
  });

  it.each([
    ["[grpc]\nmax_message_bytes = 1.5\n", "grpc.max_message_bytes must be an integer"],
    ["[daemon]\nlog_level = 3\n", 'daemon.log_level must be one of "trace"'],
    ['[firecracker]\nno_seccomp = "yes"\n', "firecracker.no_seccomp must be true or false"],
    ['[network]\ndns = "1.1.1.1"\n', "network.dns must be an array of strings"],
    ["[firecracker.jailer]\nbogus = 1\n", "unknown key firecracker.jailer.bogus"],
    ["grpc = 1\n", "grpc must be a table"],
    ["[storage]\nspare_clones = -1\n", "storage.spare_clones must be an integer from 0 to 1024"],
    ["[storage]\nspare_clones = 2000\n", "storage.spare_clones must be an integer from 0 to 1024"],
    ['[storage]\nspare_clones = "4"\n', "storage.spare_clones must be an integer"],
    ['[images]\npull = "sometimes"\n', 'images.pull must be one of "missing"'],
    ['[images.registries."r.io"]\nuser = "x"\n', 'unknown key images.registries."r.io".user'],
    [
      '[images.registries."r.io"]\npassword = 1\n',
      'images.registries."r.io".password must be a string',
    ],
    ['[images]\nregistries = { "r.io" = 1 }\n', 'images.registries."r.io" must be a table'],
  ])("rejects %j", (toml, message) => {
    expect(() => loadConfig(file(toml), {})).toThrow(ConfigError);
    expect(() => loadConfig(file(toml), {})).toThrow(message);
  });

  it("rejects a bad storage.spare_clones from the environment, naming the variable", () => {
    expect(() => loadConfig(file(""), { VMM_STORAGE_SPARE_CLONES: "many" })).toThrow(
      /VMM_STORAGE_SPARE_CLONES/,
    );
    expect(
      loadConfig(file(""), { VMM_STORAGE_SPARE_CLONES: "0" }).config.storage.spare_clones,
    ).toBe(0);
  });

  it("bounds the HTTP/2 window and frame sizes by what HTTP/2 allows", () => {
    expect(() => loadConfig(file("[grpc]\nhttp2_max_frame_bytes = 1000\n"))).toThrow(
      /http2_max_frame_bytes/,
    );
    expect(() => loadConfig(file("[grpc]\nhttp2_max_frame_bytes = 16777216\n"))).toThrow(
      /http2_max_frame_bytes/,
    );
    expect(() => loadConfig(file("[grpc]\nhttp2_stream_window_bytes = 2147483648\n"))).toThrow(
      /http2_stream_window_bytes/,
    );
    expect(() => loadConfig(file("[grpc]\nhttp2_connection_window_bytes = 100\n"))).toThrow(
      /http2_connection_window_bytes/,
    );
    const g = loadConfig(file("")).config.grpc;
    expect([
      g.http2_stream_window_bytes,
      g.http2_connection_window_bytes,
      g.http2_max_frame_bytes,
    ]).toEqual([4 << 20, 16 << 20, 1 << 20]);
  });

  it.each([
    ['[proxy]\nlisten = "127.0.0.1:8088"\n', "proxy.listen is set but proxy.domain is empty"],
    ['[proxy]\ndomain = "sb.example.com"\n', "proxy.domain is set but proxy.listen is empty"],
    ['[proxy]\nlisten = "localhost:8088"\ndomain = "sb.test"\n', 'proxy.listen must be "ip:port"'],
    ['[proxy]\nlisten = "127.0.0.1:70000"\ndomain = "sb.test"\n', 'proxy.listen must be "ip:port"'],
    ['[proxy]\nlisten = "127.0.0.1"\ndomain = "sb.test"\n', 'proxy.listen must be "ip:port"'],
    ['[proxy]\nlisten = "127.0.0.1:80"\ndomain = "sb_x.test"\n', "proxy.domain must be a DNS name"],
    ['[proxy]\nlisten = "127.0.0.1:80"\ndomain = ".test"\n', "proxy.domain must be a DNS name"],
    ['[proxy]\nurl_scheme = "ftp"\n', 'proxy.url_scheme must be one of "http"'],
    ["[proxy]\nurl_port = 65536\n", "proxy.url_port must be an integer from 0 to 65535"],
  ])("refuses the bad [proxy] %j at load", (toml, message) => {
    expect(() => validateConfig(loadConfig(file(toml), {}))).toThrow(message);
  });

  it("accepts a [proxy] with listen and domain", () => {
    const toml = '[proxy]\nlisten = "[::1]:8088"\ndomain = "Sb.Example.com."\n';
    expect(() => validateConfig(loadConfig(file(toml), {}))).not.toThrow();
  });

  it('reads [images.registries."host"] tables, and the whole table as JSON from the environment', () => {
    const f = file(
      '[images]\ninsecure_registries = ["127.0.0.1:5000"]\n[images.registries."127.0.0.1:5000"]\nusername = "u"\npassword = "p"\n[images.registries."ghcr.io"]\ntoken = "t"\n',
    );
    const { config } = loadConfig(f, {});
    expect(config.images.insecure_registries).toEqual(["127.0.0.1:5000"]);
    expect(config.images.registries).toEqual({
      "127.0.0.1:5000": { username: "u", password: "p" },
      "ghcr.io": { token: "t" },
    });
    const fromEnv = loadConfig(f, { VMM_IMAGES_REGISTRIES: '{"quay.io":{"token":"x"}}' });
    expect(fromEnv.config.images.registries).toEqual({ "quay.io": { token: "x" } });
    expect(() => loadConfig(f, { VMM_IMAGES_REGISTRIES: "{" })).toThrow(/VMM_IMAGES_REGISTRIES/);
  });

  it("names env variables by section and key", () => {
    expect(envName("grpc", "unix_socket")).toBe("VMM_GRPC_UNIX_SOCKET");
    expect(envName("firecracker.jailer", "uid")).toBe("VMM_FIRECRACKER_JAILER_UID");
  });

  it("finds the line of a key inside its section", () => {
    const text = "[a]\nx = 1\n\n[b]\ny = 2\nx = 3\n";
    expect(lineOf(text, "b", "x")).toBe(6);
    expect(lineOf(text, "a", "x")).toBe(2);
    expect(lineOf(text, "b", undefined)).toBe(4);
  });
});

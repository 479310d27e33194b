import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type OciRegistry,
  type PushedImage,
  randomLayer,
  startOciRegistry,
  tarLayer,
} from "../../../test/oci-registry.js";
import { runVmm } from "./harness.js";
import { type InProcessDaemon, startInProcessDaemon } from "./in-process-daemon.js";

// `vmm image …` against the daemon's ImageService (in-process daemon) pulling from
// docker-registry on loopback.
describe("vmm image", () => {
  let registry: OciRegistry;
  let d: InProcessDaemon;
  let app: PushedImage;
  const vmm = (args: string[]) => runVmm(args, { socket: d.socket, timeoutMs: 60_000 });

  beforeAll(async () => {
    registry = await startOciRegistry();
    app = await registry.pushImage("cli/app", "v1", {
      layers: [tarLayer({ hello: "world" }), randomLayer(512 << 10)],
    });
    d = await startInProcessDaemon({ env: { VMM_IMAGES_INSECURE_REGISTRIES: registry.host } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    await registry?.stop();
  });

  it("pull prints progress lines on stderr (not a terminal) and the digest on stdout", async () => {
    const r = await vmm(["image", "pull", `${registry.host}/cli/app:v1`]);
    expect(r.stderr).toMatch(/^resolving 127\.0\.0\.1:\d+\/cli\/app:v1\n/);
    expect(r.stderr).toContain(`downloading ${app.layers[1]!.digest}`);
    expect(r.stderr).toMatch(new RegExp(`pulled ${app.manifestDigest} .*\\n$`));
    expect(r.stderr).not.toContain("\x1b[");
    expect(r.out).toBe(`${app.manifestDigest}\n`);
    expect(r.code).toBe(0);
  });

  it("ls prints a table, -q the references, -o json the response", async () => {
    const table = await vmm(["image", "ls"]);
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^REFERENCE\s+DIGEST\s+SIZE\s+PULLED$/);
    expect(lines[1]).toMatch(
      new RegExp(`^${registry.host}/cli/app:v1\\s+${app.manifestDigest.slice(0, 19)}\\s+\\S+\\s+`),
    );
    expect((await vmm(["image", "ls", "-q"])).out).toBe(`${registry.host}/cli/app:v1\n`);
    const json = JSON.parse((await vmm(["image", "ls", "-o", "json"])).out);
    expect(json.images[0]).toMatchObject({
      reference: `${registry.host}/cli/app:v1`,
      digest: app.manifestDigest,
      sizeBytes: String(app.sizeBytes),
    });
  });

  it.each([
    ["a malformed reference", ["image", "pull", "UPPER/case"], 2, "INVALID_ARGUMENT"],
    ["an unknown tag", () => ["image", "pull", `${registry.host}/cli/app:nope`], 3, "NOT_FOUND"],
    ["an unreachable registry", ["image", "pull", "127.0.0.1:1/x:y"], 4, "UNAVAILABLE"],
    ["rm of an image never pulled", ["image", "rm", "never/pulled"], 3, "NOT_FOUND"],
  ] as const)("%s exits with its exit code and gRPC code", async (_, args, code, name) => {
    const r = await vmm(typeof args === "function" ? [...args()] : [...args]);
    expect(r.code).toBe(code);
    expect(r.stderr).toContain(`vmm: ${name}:`);
    expect(r.stderr).not.toContain("is the daemon running");
  });

  it("rm removes it", async () => {
    const r = await vmm(["image", "rm", `${registry.host}/cli/app:v1`]);
    expect(r.code).toBe(0);
    expect((await vmm(["image", "ls", "-q"])).out).toBe("");
  });

  it("image without a subcommand is a usage error naming them", async () => {
    const r = await vmm(["image"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("image needs a subcommand: pull, list or remove");
  });
});

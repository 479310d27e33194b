// ImageService over the real routes (error mapping included) and a real ImageStore
// pulling from docker-registry on loopback (test/oci-registry.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { ImageStore } from "@vmm/core";
import * as pb from "@vmm/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type OciRegistry,
  type PushedImage,
  randomLayer,
  startOciRegistry,
  tarLayer,
} from "../../../test/oci-registry.js";
import type { Logger } from "./logger.js";
import { createVmmRoutes } from "./routes.js";
import { createUnbuiltSandboxApi } from "./unbuilt-sandbox-api.js";

const silent: Logger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child: () => silent,
};

let registry: OciRegistry;
let image: PushedImage;
let dir: string;
const inUse = new Set<string>();

function client(store: ImageStore | undefined) {
  const { routes, interceptors } = createVmmRoutes({
    sandboxes: createUnbuiltSandboxApi(),
    ...(store && { images: store }),
    logger: silent,
    version: "0.0.0-test",
  });
  return createClient(pb.ImageService, createRouterTransport(routes, { router: { interceptors } }));
}

async function openStore(maxLayerBytes?: number) {
  return ImageStore.open({
    dir: mkdtempSync(join(dir, "store-")),
    registry: {
      insecureRegistries: [registry.host, "127.0.0.1:1"],
      requestTimeoutMs: 5000,
    },
    ...(maxLayerBytes !== undefined && { maxLayerBytes }),
    isInUse: (d) => (inUse.has(d) ? "sandbox sb-test" : undefined),
  });
}

async function pull(c: ReturnType<typeof client>, reference: string) {
  const messages: pb.PullProgress[] = [];
  for await (const m of c.pullImage({ reference })) messages.push(m);
  return messages;
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vmm-imgsvc-"));
  registry = await startOciRegistry();
  image = await registry.pushImage("svc/app", "v1", {
    layers: [tarLayer({ hello: "world" }), randomLayer(256 << 10)],
  });
  await registry.pushIndex("svc/armonly", "latest", [
    { layers: [tarLayer({ a: "arm64" })], architecture: "arm64" },
    { layers: [tarLayer({ a: "armv7" })], architecture: "arm" },
  ]);
});
afterAll(async () => {
  await registry?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("ImageService", () => {
  it("PullImage streams progress ending with done; ListImages and RemoveImage", async () => {
    const c = client(await openStore());
    const ref = `${registry.host}/svc/app:v1`;
    const messages = await pull(c, ref);
    const last = messages.at(-1)!;
    expect(last).toMatchObject({
      status: "pulled",
      done: true,
      digest: image.manifestDigest,
      currentBytes: BigInt(image.sizeBytes),
      totalBytes: BigInt(image.sizeBytes),
    });
    expect(messages.filter((m) => m.done)).toHaveLength(1);
    expect(messages[0]!.status).toBe("resolving");

    const list = await c.listImages({});
    expect(list.images).toHaveLength(1);
    expect(list.images[0]).toMatchObject({
      reference: ref,
      digest: image.manifestDigest,
      sizeBytes: BigInt(image.sizeBytes),
    });
    expect(Number(list.images[0]!.createdAt)).toBeCloseTo(Date.now() / 1000, -2);

    inUse.add(image.manifestDigest);
    expect(await codeOf(c.removeImage({ reference: ref }))).toEqual({
      code: Code.FailedPrecondition,
      message: expect.stringContaining("in use by sandbox sb-test"),
    });
    inUse.delete(image.manifestDigest);
    await c.removeImage({ reference: ref });
    expect((await c.listImages({})).images).toEqual([]);
    expect((await codeOf(c.removeImage({ reference: ref }))).code).toBe(Code.NotFound);
  });

  it.each([
    ["an empty reference", () => "", Code.InvalidArgument, "reference"],
    ["a malformed reference", () => "Not/A/Ref!", Code.InvalidArgument, "not an image reference"],
    ["an unknown repository", () => `${registry.host}/svc/nope:v1`, Code.NotFound, "svc/nope"],
    ["an unknown tag", () => `${registry.host}/svc/app:nope`, Code.NotFound, "image tag"],
    ["an unreachable registry", () => "127.0.0.1:1/svc/app:v1", Code.Unavailable, "127.0.0.1:1"],
    [
      "an arm64-only image",
      () => `${registry.host}/svc/armonly`,
      Code.FailedPrecondition,
      "linux/arm64, linux/arm",
    ],
  ])("PullImage of %s fails with its code", async (_, ref, code, message) => {
    const c = client(await openStore());
    expect(await codeOf(pull(c, ref()))).toEqual({
      code,
      message: expect.stringContaining(message),
    });
  });

  it("PullImage of a too-big layer is RESOURCE_EXHAUSTED", async () => {
    const c = client(await openStore(100 << 10));
    expect(await codeOf(pull(c, `${registry.host}/svc/app:v1`))).toEqual({
      code: Code.ResourceExhausted,
      message: expect.stringContaining("max_layer_bytes"),
    });
  });

  it("PullImage with refused credentials is PERMISSION_DENIED", async () => {
    registry.setAuth({ kind: "bearer", username: "u", password: "p" });
    try {
      const c = client(await openStore());
      expect(await codeOf(pull(c, `${registry.host}/svc/app:v1`))).toEqual({
        code: Code.PermissionDenied,
        message: expect.stringContaining("anonymous access"),
      });
    } finally {
      registry.setAuth({ kind: "none" });
    }
  });

  it("PullImage of a corrupted blob is DATA_LOSS and nothing is listed", async () => {
    registry.faults.corrupt.add(image.layers[1]!.digest);
    try {
      const store = await openStore();
      const c = client(store);
      expect((await codeOf(pull(c, `${registry.host}/svc/app:v1`))).code).toBe(Code.DataLoss);
      expect((await c.listImages({})).images).toEqual([]);
    } finally {
      registry.faults.corrupt.clear();
    }
  });

  it("answers UNIMPLEMENTED without an image store", async () => {
    expect((await codeOf(client(undefined).listImages({}))).code).toBe(Code.Unimplemented);
  });
});

// The image store against a real registry (docker-registry on loopback, test/oci-registry.ts).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type OciRegistry,
  type PushedBlob,
  type PushedImage,
  randomLayer,
  startOciRegistry,
  tarLayer,
} from "../../../../test/oci-registry.js";
import { ImageStore, type ImageStoreOptions } from "../../src/images/index.js";
import type { ImagePullProgress } from "../../src/images/types.js";

let registry: OciRegistry;
let big: PushedImage;
let multi: { indexDigest: string; images: PushedImage[] };
const dirs: string[] = [];

beforeAll(async () => {
  registry = await startOciRegistry();
  big = await registry.pushImage("test/big", "v1", {
    layers: [tarLayer({ "etc/os-release": "ID=test\n" }), randomLayer(3 << 20)],
  });
  multi = await registry.pushIndex("test/multi", "latest", [
    { layers: [tarLayer({ arch: "amd64" })], architecture: "amd64" },
    { layers: [tarLayer({ arch: "arm64" })], architecture: "arm64" },
  ]);
});
afterAll(async () => {
  await registry?.stop();
});
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  registry.faults.corrupt.clear();
  registry.faults.cutAfter.clear();
  registry.faults.ignoreRange = false;
  registry.setAuth({ kind: "none" });
});

async function openStore(extra: Partial<ImageStoreOptions> = {}): Promise<ImageStore> {
  const dir = mkdtempSync(join(tmpdir(), "vmm-images-"));
  dirs.push(dir);
  return ImageStore.open({
    dir: join(dir, "oci"),
    registry: { insecureRegistries: [registry.host] },
    ...extra,
  });
}

const storedBlobs = (store: ImageStore) => readdirSync(join(store.dir, "blobs", "sha256")).sort();
const partials = (store: ImageStore) => readdirSync(join(store.dir, "tmp"));

describe("ImageStore.pull", () => {
  it("picks the linux/amd64 manifest of an index and stores every blob verified", async () => {
    const store = await openStore();
    const progress: ImagePullProgress[] = [];
    const ref = `${registry.host}/test/multi`;
    const img = await store.pull(ref, { onProgress: (p) => progress.push(p) });
    const amd64 = multi.images[0]!;
    expect(img.reference).toBe(`${registry.host}/test/multi:latest`);
    expect(img.manifestDigest).toBe(amd64.manifestDigest);
    expect(img.config.architecture).toBe("amd64");
    expect(img.layers.map((l) => l.digest)).toEqual(amd64.layers.map((l) => l.digest));
    expect(img.sizeBytes).toBe(amd64.sizeBytes);
    for (const l of img.layers) expect(statSync(store.blobPath(l.digest)).size).toBe(l.size);
    // Index, amd64 manifest, config, layer; nothing of arm64.
    expect(storedBlobs(store)).toEqual(
      [multi.indexDigest, amd64.manifestDigest, amd64.config.digest, amd64.layers[0]!.digest]
        .map((d) => d.slice(7))
        .sort(),
    );
    expect(registry.blobGets(multi.images[1]!.layers[0]!.digest)).toEqual([]);
    expect(JSON.parse(readFileSync(join(store.dir, "oci-layout"), "utf8"))).toEqual({
      imageLayoutVersion: "1.0.0",
    });
    const index = JSON.parse(readFileSync(join(store.dir, "index.json"), "utf8"));
    expect(index.manifests[0].annotations["org.opencontainers.image.ref.name"]).toBe(img.reference);
    expect(await store.lookup(ref)).toEqual(img);
    expect(progress.at(-1)).toMatchObject({ done: true, currentBytes: img.sizeBytes });
    expect(progress.filter((p) => p.done)).toHaveLength(1);
    // A reopened store knows the image.
    const again = await ImageStore.open({ dir: store.dir });
    expect(await again.lookup(`${registry.host}/test/multi:latest`)).toEqual(img);
  });

  it("pulls by digest", async () => {
    const store = await openStore();
    const img = await store.pull(`${registry.host}/test/big@${big.manifestDigest}`);
    expect(img.manifestDigest).toBe(big.manifestDigest);
    expect(img.reference).toBe(`${registry.host}/test/big@${big.manifestDigest}`);
  });

  it("reports byte progress that only grows, up to the image size", async () => {
    const store = await openStore();
    const progress: ImagePullProgress[] = [];
    await store.pull(`${registry.host}/test/big:v1`, { onProgress: (p) => progress.push(p) });
    const bytes = progress.map((p) => p.currentBytes);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({
      currentBytes: big.sizeBytes,
      totalBytes: big.sizeBytes,
      digest: big.manifestDigest,
      done: true,
    });
    expect(progress.some((p) => p.currentBytes > 0 && p.currentBytes < big.sizeBytes)).toBe(true);
  });

  it("deduplicates concurrent pulls of one reference: one download, every caller gets result and progress", async () => {
    const store = await openStore();
    const before = registry.requests.length;
    const seen: ImagePullProgress[][] = [[], [], []];
    const results = await Promise.all(
      seen.map((s) => store.pull(`${registry.host}/test/big:v1`, { onProgress: (p) => s.push(p) })),
    );
    expect(new Set(results.map((r) => r.manifestDigest))).toEqual(new Set([big.manifestDigest]));
    const during = registry.requests.slice(before);
    for (const l of big.layers) {
      expect(during.filter((r) => r.method === "GET" && r.path.endsWith(l.digest))).toHaveLength(1);
    }
    expect(during.filter((r) => r.path.includes("/manifests/"))).toHaveLength(1);
    for (const s of seen)
      expect(s.at(-1)).toMatchObject({ done: true, currentBytes: big.sizeBytes });
  });

  it("skips blobs already stored on a second pull", async () => {
    const store = await openStore();
    await store.pull(`${registry.host}/test/big:v1`);
    const before = registry.requests.length;
    await store.pull(`${registry.host}/test/big:v1`);
    expect(registry.requests.slice(before).filter((r) => r.path.includes("/blobs/"))).toEqual([]);
  });

  // KNOWN FLAKE (open): in about one full-file run in three the resumed 206 response reaches
  // the client empty or cut ("ended after 1048576" / "terminated"), and then on every retry in
  // that run (so no retry option); never when this test runs alone. Not diagnosed: the fixture
  // front, or distribution's Range serving. A failed resume is UNAVAILABLE and keeps nothing
  // unverified, so the store stays correct either way.
  it("resumes an interrupted blob download with a Range request", async () => {
    const store = await openStore();
    const layer = big.layers[1]!;
    registry.faults.cutAfter.set(layer.digest, 1 << 20);
    const err = await store.pull(`${registry.host}/test/big:v1`).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "unavailable" });
    // The other layer may have been stopped part-way too (kept for resuming as well).
    expect(partials(store)).toContain(`${layer.digest.slice(7)}.partial`);
    const kept = statSync(join(store.dir, "tmp", `${layer.digest.slice(7)}.partial`)).size;
    expect(kept).toBeGreaterThan(0);
    expect(await store.lookup(`${registry.host}/test/big:v1`)).toBeUndefined();

    const progress: ImagePullProgress[] = [];
    const img = await store.pull(`${registry.host}/test/big:v1`, {
      onProgress: (p) => progress.push(p),
    });
    const gets = registry.blobGets(layer.digest);
    expect(gets.at(-1)).toMatchObject({ range: `bytes=${kept}-`, status: 206 });
    expect(statSync(store.blobPath(layer.digest)).size).toBe(layer.size);
    expect(img.manifestDigest).toBe(big.manifestDigest);
    expect(partials(store)).toEqual([]);
    expect(progress.at(-1)).toMatchObject({ currentBytes: big.sizeBytes });
  });

  it("a failed layer stops the pull's other downloads before the pull returns", async () => {
    const slow = await registry.pushImage("test/stall", "v1", {
      layers: [randomLayer(64 << 10), randomLayer(64 << 10)],
    });
    const [stalled, cut] = slow.layers as [PushedBlob, PushedBlob];
    registry.faults.stall.add(stalled.digest);
    registry.faults.cutAfter.set(cut.digest, 1000);
    try {
      const store = await openStore();
      await expect(store.pull(`${registry.host}/test/stall:v1`)).rejects.toMatchObject({
        kind: "unavailable",
        message: expect.stringContaining(cut.digest),
      });
      // The stalled download was cancelled, not left running: its connection closes.
      await expect.poll(() => registry.openStalls(), { timeout: 2000 }).toBe(0);
      expect(registry.blobGets(stalled.digest)).toHaveLength(1);
    } finally {
      registry.faults.stall.clear();
    }
  });

  it("a registry that stops sending mid-blob is UNAVAILABLE after the request timeout", async () => {
    const img = await registry.pushImage("test/stall2", "v1", { layers: [randomLayer(1 << 10)] });
    const layer = img.layers[0]!;
    registry.faults.stall.add(layer.digest);
    try {
      const store = await openStore({
        registry: { insecureRegistries: [registry.host], requestTimeoutMs: 300 },
      });
      const t0 = performance.now();
      await expect(store.pull(`${registry.host}/test/stall2:v1`)).rejects.toMatchObject({
        kind: "unavailable",
        message: expect.stringMatching(/sent no bytes of blob .* for 300 ms/),
      });
      expect(performance.now() - t0).toBeLessThan(5000);
      await expect.poll(() => registry.openStalls(), { timeout: 2000 }).toBe(0);
      registry.faults.stall.clear();
      // The next pull goes on from what arrived (nothing here) and completes.
      expect((await store.pull(`${registry.host}/test/stall2:v1`)).manifestDigest).toBe(
        img.manifestDigest,
      );
    } finally {
      registry.faults.stall.clear();
    }
  });

  it("starts over when the registry ignores Range, and still verifies", async () => {
    const store = await openStore();
    const layer = big.layers[1]!;
    registry.faults.cutAfter.set(layer.digest, 1 << 20);
    await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "unavailable",
    });
    registry.faults.ignoreRange = true;
    await store.pull(`${registry.host}/test/big:v1`);
    expect(registry.blobGets(layer.digest).at(-1)).toMatchObject({ status: 200 });
    expect(statSync(store.blobPath(layer.digest)).size).toBe(layer.size);
  });

  it("refetches from byte 0 when a 206 starts elsewhere than the Range asked", async () => {
    const store = await openStore();
    const layer = big.layers[1]!;
    registry.faults.cutAfter.set(layer.digest, 1 << 20);
    await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "unavailable",
    });
    registry.faults.shiftRange = true;
    try {
      await store.pull(`${registry.host}/test/big:v1`);
    } finally {
      registry.faults.shiftRange = false;
    }
    const gets = registry.blobGets(layer.digest).slice(-2);
    expect(gets[0]).toMatchObject({ status: 206 }); // answered for the wrong bytes: not appended
    expect(gets[1]).toMatchObject({ range: undefined, status: 200 });
    expect(statSync(store.blobPath(layer.digest)).size).toBe(layer.size);
  });

  it("a corrupted blob is DATA_LOSS and nothing of it is cached", async () => {
    const store = await openStore();
    const layer = big.layers[1]!;
    registry.faults.corrupt.add(layer.digest);
    await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "data_loss",
      message: expect.stringContaining(layer.digest),
    });
    expect(existsSync(store.blobPath(layer.digest))).toBe(false);
    expect(partials(store)).toEqual([]);
    expect(existsSync(store.blobPath(big.manifestDigest))).toBe(false);
    expect(await store.list()).toEqual([]);
  });

  it.skipIf(process.geteuid?.() !== 0)(
    "a full disk is RESOURCE_EXHAUSTED and leaves nothing of the blob behind",
    async () => {
      // A 2 MiB tmpfs for the store: the 3 MiB layer cannot fit.
      const dir = mkdtempSync(join(tmpdir(), "vmm-images-full-"));
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir]);
      try {
        const store = await ImageStore.open({
          dir: join(dir, "oci"),
          registry: { insecureRegistries: [registry.host] },
        });
        await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
          kind: "resource_exhausted",
        });
        expect(existsSync(store.blobPath(big.layers[1]!.digest))).toBe(false);
        expect(partials(store)).toEqual([]);
        expect(await store.lookup(`${registry.host}/test/big:v1`)).toBeUndefined();
        expect(await store.list()).toEqual([]);
      } finally {
        execFileSync("umount", [dir]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("a layer bigger than max_layer_bytes fails before any blob is downloaded", async () => {
    const store = await openStore({ maxLayerBytes: 1 << 20 });
    const before = registry.requests.length;
    await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "resource_exhausted",
      message: expect.stringContaining("max_layer_bytes"),
    });
    expect(registry.requests.slice(before).filter((r) => r.path.includes("/blobs/"))).toEqual([]);
  });

  it("an abandoned pull stops when its only caller aborts, and a later pull resumes it", async () => {
    const store = await openStore();
    const ac = new AbortController();
    const p = store.pull(`${registry.host}/test/big:v1`, {
      signal: ac.signal,
      onProgress: (pr) => {
        if (pr.currentBytes > 1 << 20) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    const img = await store.pull(`${registry.host}/test/big:v1`);
    expect(img.manifestDigest).toBe(big.manifestDigest);
  });
});

describe("ImageStore auth", () => {
  it.each([
    ["basic", { kind: "basic", username: "u", password: "p" }],
    ["bearer", { kind: "bearer", username: "u", password: "p" }],
  ] as const)("pulls with %s credentials from config", async (_, auth) => {
    registry.setAuth(auth);
    const store = await openStore({
      registry: {
        insecureRegistries: [registry.host],
        credentials: new Map([[registry.host, { username: "u", password: "p" }]]),
      },
    });
    const before = registry.requests.length;
    const img = await store.pull(`${registry.host}/test/big:v1`);
    expect(img.manifestDigest).toBe(big.manifestDigest);
    if (auth.kind === "bearer") {
      // One token for the pull: cached for its scope.
      expect(registry.requests.slice(before).filter((r) => r.path === "/token")).toHaveLength(1);
    }
  });

  it.each([
    ["basic, no credentials", { kind: "basic", username: "u", password: "p" }, undefined],
    ["basic, wrong password", { kind: "basic", username: "u", password: "p" }, "nope"],
    ["bearer, no credentials", { kind: "bearer", username: "u", password: "p" }, undefined],
    ["bearer, wrong password", { kind: "bearer", username: "u", password: "p" }, "nope"],
  ] as const)("%s → PERMISSION_DENIED", async (_, auth, password) => {
    registry.setAuth(auth);
    const store = await openStore({
      registry: {
        insecureRegistries: [registry.host],
        ...(password !== undefined && {
          credentials: new Map([[registry.host, { username: "u", password }]]),
        }),
      },
    });
    await expect(store.pull(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "permission_denied",
      message: expect.stringContaining(registry.host),
    });
  });
});

describe("ImageStore.remove", () => {
  it("removes the record and the blobs no other image uses", async () => {
    const shared = tarLayer({ shared: "yes" });
    const a = await registry.pushImage("test/a", "v1", { layers: [shared, tarLayer({ a: "1" })] });
    const b = await registry.pushImage("test/b", "v1", { layers: [shared, tarLayer({ b: "1" })] });
    const store = await openStore();
    await store.pull(`${registry.host}/test/a:v1`);
    await store.pull(`${registry.host}/test/b:v1`);
    await store.remove(`${registry.host}/test/a:v1`);
    expect((await store.list()).map((i) => i.reference)).toEqual([`${registry.host}/test/b:v1`]);
    expect(existsSync(store.blobPath(a.layers[0]!.digest))).toBe(true); // shared with b
    expect(existsSync(store.blobPath(a.layers[1]!.digest))).toBe(false);
    expect(existsSync(store.blobPath(a.manifestDigest))).toBe(false);
    expect(existsSync(store.blobPath(b.layers[1]!.digest))).toBe(true);
    await expect(store.remove(`${registry.host}/test/a:v1`)).rejects.toMatchObject({
      kind: "not_found",
    });
  });

  it("refuses while the image is in use, naming the user", async () => {
    const store = await openStore({
      isInUse: (d) => (d === big.manifestDigest ? "sandbox sb-1" : undefined),
    });
    await store.pull(`${registry.host}/test/big:v1`);
    await expect(store.remove(`${registry.host}/test/big:v1`)).rejects.toMatchObject({
      kind: "failed_precondition",
      message: expect.stringContaining("sandbox sb-1"),
    });
    expect(await store.list()).toHaveLength(1);
    expect(existsSync(store.blobPath(big.layers[1]!.digest))).toBe(true);
  });
});

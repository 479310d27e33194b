import { execFile } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { randomLayer, startOciRegistry } from "../../../test/oci-registry.js";
import { type BenchOptions, report, runStart } from "./commands.js";
import { connectDaemon, startDaemon } from "./daemon.js";
import { backendInfo } from "./host.js";
import type { BenchReport, PhaseRatio } from "./report.js";
import { ratio, Samples } from "./stats.js";

const run = promisify(execFile);
const LAYER_MIB = 10;
const LAYERS = 5;

/**
 * `vmm-bench image-pull`: PullImage of a ~50 MB image (5 × 10 MiB incompressible
 * layers) from docker-registry on loopback through the daemon, against two
 * baselines in the same run, interleaved: a plain fetch of the same blobs to
 * disk (3 at a time, no verification) and `skopeo copy` into a dir:. Each
 * daemon pull starts from an empty store (RemoveImage after it, untimed).
 */
export async function imagePullCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  if (o.socket !== undefined) throw new Error("image-pull starts its own daemon and registry");
  if (o.firecracker === null) throw new Error("image-pull needs a firecracker binary (or fc-sim)");
  await using registry = await startOciRegistry();
  const image = await registry.pushImage("bench/big", "v1", {
    layers: Array.from({ length: LAYERS }, () => randomLayer(LAYER_MIB << 20)),
  });
  const ref = `${registry.host}/bench/big:v1`;
  const mb = image.sizeBytes / 1e6;
  const proc = await startDaemon({
    firecracker: o.firecracker,
    readiness: o.readiness,
    kernel: o.kernel,
    rootfs: o.rootfs,
    vcpus: o.vcpus,
    memoryMib: o.memoryMib,
    images: [`insecure_registries = [${JSON.stringify(registry.host)}]`],
  });
  const clients = connectDaemon(proc.socket);
  const scratch = mkdtempSync(join(tmpdir(), "vmm-bench-pull-"));
  try {
    const daemonPull = async () => {
      let done = false;
      for await (const p of clients.image.pullImage({ reference: ref }, { signal: o.signal })) {
        done ||= p.done;
      }
      if (!done) throw new Error("PullImage ended without done");
      await clients.image.removeImage({ reference: ref });
    };
    const rawFetch = async (dir: string) => {
      const blobs = [image.config, ...image.layers];
      const base = `http://${registry.host}/v2/bench/big`;
      const m = await fetch(`${base}/manifests/v1`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      });
      await m.arrayBuffer();
      const queue = [...blobs];
      await Promise.all(
        [0, 1, 2].map(async () => {
          for (let b = queue.shift(); b; b = queue.shift()) {
            const res = await fetch(`${base}/blobs/${b.digest}`, { signal: o.signal });
            if (!res.ok || !res.body) throw new Error(`raw fetch ${b.digest}: HTTP ${res.status}`);
            await pipeline(
              Readable.fromWeb(res.body as never),
              createWriteStream(join(dir, b.digest.slice(7))),
            );
          }
        }),
      );
    };
    const skopeo = async (dir: string) => {
      await run(
        "skopeo",
        ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `dir:${dir}`],
        { signal: o.signal },
      );
    };
    const samples = new Samples();
    const timed = async (phase: string, fn: (dir: string) => Promise<void>, measure: boolean) => {
      const dir = mkdtempSync(join(scratch, "x-"));
      const t0 = performance.now();
      await fn(dir);
      const ms = performance.now() - t0;
      rmSync(dir, { recursive: true, force: true });
      if (measure) samples.add(phase, ms);
    };
    for (let i = 0; i < o.warmup + o.iterations; i++) {
      o.signal.throwIfAborted();
      const measure = i >= o.warmup;
      await timed("daemon.pull_ms", () => daemonPull(), measure);
      await timed("raw.fetch_ms", rawFetch, measure);
      await timed("skopeo.copy_ms", skopeo, measure);
    }
    const phases = samples.summarize();
    const mbps = (phase: string) => {
      const p = phases[phase];
      return p ? Math.round((mb / (p.p50 / 1000)) * 10) / 10 : null;
    };
    const vs = (a: string, b: string): PhaseRatio => ({
      p50: ratio(phases[a]!.p50, phases[b]!.p50) ?? null,
      mean: ratio(phases[a]!.mean, phases[b]!.mean) ?? null,
    });
    return report(
      "image-pull",
      date,
      backendInfo(o.firecracker),
      { iterations: o.iterations, warmup: o.warmup, imageBytes: image.sizeBytes, layers: LAYERS },
      phases,
      [
        `image: ${LAYERS} layers of ${LAYER_MIB} MiB random data (gzip'd tar, incompressible) + config, ${image.sizeBytes} bytes, on docker-registry (filesystem storage, tmpfs or disk as /tmp is) behind the test front (Node http proxy) on loopback`,
        "daemon.pull_ms: PullImage over the daemon's Unix socket until done (manifest, config, 5 layers 3 at a time, each sha256-verified while streamed to tmp/, fsync, rename; records written); RemoveImage after each, untimed, so every pull downloads everything",
        "raw.fetch_ms: Node fetch of the same manifest and blobs straight from the registry to files, 3 at a time, no verification, no fsync: the transfer floor",
        "skopeo.copy_ms: skopeo copy docker://… dir:… (Debian skopeo; verifies digests; its own process start included)",
        "MB/s at p50 in mbPerSecond; ratios: daemon / baseline (1.0 = as fast)",
      ],
      {
        ratios: {
          "daemon/raw": vs("daemon.pull_ms", "raw.fetch_ms"),
          "daemon/skopeo": vs("daemon.pull_ms", "skopeo.copy_ms"),
        },
        mbPerSecond: {
          daemon: mbps("daemon.pull_ms"),
          raw: mbps("raw.fetch_ms"),
          skopeo: mbps("skopeo.copy_ms"),
        },
      },
    );
  } finally {
    clients.close();
    await proc.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

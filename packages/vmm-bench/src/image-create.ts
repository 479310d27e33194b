/**
 * `vmm-bench image-create`: what Create with an OCI image costs. Builds a
 * ~50 MB two-layer image locally (busybox + incompressible files, a gzip
 * layer with a whiteout), then measures (1) the conversion to a cached
 * rootfs (cold builds, each in a fresh cache) and a cache hit, in-process
 * with the daemon's ImageRootfsBuilder, and (2) Create → ready → first Run →
 * Remove from the cached image vs from the plain dev rootfs, interleaved
 * (ABAB) on one daemon that pulled the image from docker-registry on
 * loopback (the first, untimed Create pulls and converts it).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ImageRootfsBuilder, OciLayoutImageSource, writeOciLayoutImage } from "@vmm/core";
import { startOciRegistry } from "../../../test/oci-registry.js";
import {
  type BenchOptions,
  commonParams,
  interleave,
  nextId,
  openDaemon,
  report,
  runStart,
} from "./commands.js";
import { backendInfo } from "./host.js";
import { daemonIteration } from "./lifecycle.js";
import type { BenchReport } from "./report.js";
import { ratio, Samples } from "./stats.js";

const REF = "bench/image:1";
const CONTENT_MIB = 48;
const CONVERT_ITERATIONS = 3;

/** Writes the benchmark image into an OCI layout at `layout`; returns its gzip'd layers. */
async function buildImage(dir: string, layout: string): Promise<Buffer[]> {
  const base = join(dir, "base");
  mkdirSync(join(base, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(base, "bin/busybox"));
  for (const a of ["sh", "true", "cat", "env"]) symlinkSync("busybox", join(base, `bin/${a}`));
  mkdirSync(join(base, "etc"));
  writeFileSync(join(base, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(base, "etc/old"), "x\n");
  // Many files of mixed sizes, like a language runtime's tree.
  for (let i = 0; i < 24; i++) {
    const d = join(base, `usr/lib/pkg${i}`);
    mkdirSync(d, { recursive: true });
    for (let j = 0; j < 32; j++) {
      writeFileSync(join(d, `f${j}`), randomBytes(((CONTENT_MIB * 1024 * 1024) / (24 * 32)) | 0));
    }
  }
  const top = join(dir, "top");
  mkdirSync(join(top, "etc"), { recursive: true });
  writeFileSync(join(top, "etc/.wh.old"), "");
  writeFileSync(join(top, "etc/new"), "new\n");
  const tar = (d: string) =>
    execFileSync("tar", ["--numeric-owner", "-C", d, "-cf", "-", "."], { maxBuffer: 256 << 20 });
  const layers = [
    {
      data: gzipSync(tar(base), { level: 1 }),
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    },
    { data: gzipSync(tar(top)), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" },
  ];
  await writeOciLayoutImage(layout, REF, layers, { Env: ["PATH=/bin"] });
  return layers.map((l) => l.data);
}

/** Runs the benchmark (see the module comment). */
export async function imageCreateCommand(o: BenchOptions): Promise<BenchReport> {
  const date = runStart();
  if (o.socket !== undefined)
    throw new Error("image-create starts its own daemon; --socket makes no sense here");
  const dir = mkdtempSync("/tmp/vb-img-");
  try {
    const layout = join(dir, "layout");
    const layers = await buildImage(dir, layout);
    const imageBytes = layers.reduce((n, l) => n + l.length, 0);
    const source = new OciLayoutImageSource(layout);
    const image = await source.lookup(REF);
    if (!image) throw new Error("the benchmark image is missing from its layout");

    const convert = new Samples();
    let rootfsBytes = 0;
    for (let i = 0; i < CONVERT_ITERATIONS; i++) {
      const dataDir = join(dir, `convert-${i}`);
      const builder = new ImageRootfsBuilder({ dataDir, agent: { fromRootfs: o.rootfs } });
      await builder.agent(); // the agent copy is a one-time cost per daemon, not per image
      const t0 = performance.now();
      const built = await builder.rootfs(image, source);
      convert.add("convert_cold_ms", performance.now() - t0);
      rootfsBytes = built.sizeBytes;
      const h0 = performance.now();
      const hit = await builder.rootfs(image, source);
      convert.add("convert_cached_ms", performance.now() - h0);
      if (hit.outcome !== "cached") throw new Error(`second build was ${hit.outcome}, not cached`);
      rmSync(dataDir, { recursive: true, force: true });
    }

    // The same image in a registry, for the daemon: Create pulls it on first use.
    await using registry = await startOciRegistry();
    await registry.pushImage("bench/image", "1", { layers, env: ["PATH=/bin"], cmd: [] });
    const ref = `${registry.host}/bench/image:1`;
    const plain = new Samples();
    const fromImage = new Samples();
    {
      await using d = await openDaemon(o, {
        images: [`insecure_registries = [${JSON.stringify(registry.host)}]`],
      });
      // First Create builds the daemon's own cache entry (untimed).
      await daemonIteration(d.clients, nextId("w"), false, new Samples(), o.signal, undefined, {
        image: ref,
      });
      const runFirst = o.readiness === "agent";
      await interleave(
        [
          [(s, _timed) => daemonIteration(d.clients, nextId("p"), runFirst, s, o.signal), plain],
          [
            (s, _timed) =>
              daemonIteration(d.clients, nextId("i"), runFirst, s, o.signal, undefined, {
                image: ref,
              }),
            fromImage,
          ],
        ],
        o,
      );
    }
    const pp = plain.summarize();
    const ip = fromImage.summarize();
    const ratios: Record<string, { p50: number | null; mean: number | null }> = {};
    for (const [k, v] of Object.entries(ip)) {
      const b = pp[k];
      if (b)
        ratios[`image/plain.${k}`] = {
          p50: ratio(v.p50, b.p50) ?? null,
          mean: ratio(v.mean, b.mean) ?? null,
        };
    }
    return report(
      "image-create",
      date,
      backendInfo(o.firecracker),
      {
        ...commonParams(o),
        imageCompressedBytes: imageBytes,
        contentMib: CONTENT_MIB,
        rootfsBytes,
        convertIterations: CONVERT_ITERATIONS,
        order: "ABAB (alternating first side)",
      },
      {
        ...prefix("convert", convert.summarize()),
        ...prefix("plain", pp),
        ...prefix("image", ip),
      },
      [
        "convert_cold_ms: unpack (decompress + header scan + umoci) + agent injection + mkfs.ext4 -d, fresh cache each time",
        "image.* vs plain.*: Create → ready → first Run true → Remove, same daemon, the image's rootfs already cached",
      ],
      { ratios: ratios as never },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function prefix<T>(p: string, phases: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [`${p}.${k}`, v]));
}

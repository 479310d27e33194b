/**
 * Turns a pulled image into a bootable rootfs, once per manifest digest:
 * layers unpacked in a staging directory (layer-unpack.ts), the agent made
 * init (agent-injection.ts), an ext4 image of the tree (ext4-image.ts)
 * published into the cache (rootfs-cache.ts). Concurrent builds of one
 * digest share one build; the staging directory and any partial image are
 * removed whatever happens (undo stack).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Logger, sha256File, silentLogger } from "../internal/index.js";
import { mapDiskError } from "../storage/disk-errors.js";
import { type AgentBinarySource, agentBinaryPath } from "./agent-binary.js";
import { injectAgent } from "./agent-injection.js";
import { makeExt4 } from "./ext4-image.js";
import { unpackLayers } from "./layer-unpack.js";
import { RootfsCache } from "./rootfs-cache.js";
import type { ImageSource, PulledImage } from "./types.js";

/** Options of {@link ImageRootfsBuilder}. */
export interface ImageRootfsBuilderOptions {
  /** The daemon's data_dir: the cache is `<dataDir>/images/rootfs/`. */
  readonly dataDir: string;
  /** The guest agent injected as init. */
  readonly agent: AgentBinarySource;
  /** Free space left in each image's filesystem beyond its content, MiB. Default 256. */
  readonly headroomMib?: number;
  readonly logger?: Logger;
}

/** A rootfs ready to clone. */
export interface ImageRootfs {
  /** Absolute path of the cached ext4 image (never written to: sandboxes clone it). */
  readonly path: string;
  readonly manifestDigest: string;
  readonly sizeBytes: number;
  /** `built` by this call, `joined` a build under way, or `cached` from an earlier one. */
  readonly outcome: "built" | "joined" | "cached";
  /** Time spent building (0 when cached). */
  readonly buildMs: number;
}

/** Builds and caches image rootfs files (see the module comment). */
export class ImageRootfsBuilder {
  readonly cache: RootfsCache;
  readonly #opts: ImageRootfsBuilderOptions;
  readonly #log: Logger;
  readonly #building = new Map<string, Promise<ImageRootfs>>();
  #agent: Promise<{ path: string; sha256: string }> | undefined;
  #swept: Promise<void> | undefined;

  constructor(options: ImageRootfsBuilderOptions) {
    this.#opts = options;
    this.cache = new RootfsCache(options.dataDir);
    this.#log = options.logger ?? silentLogger;
  }

  /**
   * The rootfs of `image`: from the cache, or built (joining a build of the
   * same digest under way). Errors: InvalidArgumentError("image") for a layer
   * that breaks the path rules, FailedPreconditionError for an unsupported
   * layer media type or a blob missing from the store, ResourceExhaustedError
   * when the disk is full.
   */
  async rootfs(image: PulledImage, source: ImageSource): Promise<ImageRootfs> {
    const digest = image.manifestDigest;
    const running = this.#building.get(digest);
    if (running) return { ...(await running), outcome: "joined", buildMs: 0 };
    const agent = await this.agent();
    const cached = await this.cache.usable(digest, agent.sha256);
    if (cached) {
      return {
        path: this.cache.imagePath(digest),
        manifestDigest: digest,
        sizeBytes: cached.sizeBytes,
        outcome: "cached",
        buildMs: 0,
      };
    }
    const again = this.#building.get(digest); // started while we read the cache
    if (again) return { ...(await again), outcome: "joined", buildMs: 0 };
    // No request signal: a build outlives the request that started it (others may have joined it).
    const build = this.#build(image, source, agent);
    this.#building.set(digest, build);
    try {
      return await build;
    } finally {
      this.#building.delete(digest);
    }
  }

  /** Removes the cached rootfs of a manifest digest (RemoveImage); sandboxes' clones are not touched. */
  async remove(manifestDigest: string): Promise<void> {
    await this.cache.remove(manifestDigest);
  }

  /** The agent binary and its hash, resolved once. */
  agent(): Promise<{ path: string; sha256: string }> {
    this.#agent ??= (async () => {
      await mkdir(this.cache.dir, { recursive: true });
      const scratch = join(this.cache.dir, ".agent");
      const path = await agentBinaryPath(this.#opts.agent, scratch);
      const { sha256 } = await sha256File(path);
      return { path, sha256 };
    })();
    this.#agent.catch(() => {
      this.#agent = undefined; // retried by the next build
    });
    return this.#agent;
  }

  async #build(
    image: PulledImage,
    source: ImageSource,
    agent: { path: string; sha256: string },
  ): Promise<ImageRootfs> {
    const started = performance.now();
    const digest = image.manifestDigest;
    const hex = RootfsCache.hex(digest);
    this.#swept ??= this.cache.removeLeftovers();
    await this.#swept;
    await using undo = new AsyncDisposableStack();
    const tag = `${hex.slice(0, 16)}-${randomBytes(4).toString("hex")}`;
    const staging = join(this.cache.dir, `.build-${tag}`);
    const tmpImage = join(this.cache.dir, `.tmp-${tag}.ext4`);
    undo.defer(() => rm(staging, { recursive: true, force: true }));
    undo.defer(() => rm(tmpImage, { force: true }));
    try {
      await mkdir(join(staging, "layout"), { recursive: true });
      const tree = join(staging, "rootfs");
      await unpackLayers(image, source, join(staging, "layout"), tree);
      const injected = await injectAgent(tree, agent.path);
      const { sizeBytes, usage } = await makeExt4(tree, tmpImage, {
        headroomBytes: (this.#opts.headroomMib ?? 256) * 1024 * 1024,
      });
      await rename(tmpImage, this.cache.imagePath(digest));
      await this.cache.commit({
        formatVersion: 1,
        manifestDigest: digest,
        reference: image.reference,
        agentSha256: agent.sha256,
        sizeBytes,
        builtAtMs: Date.now(),
        ...(injected.replacedInit !== undefined && { replacedInit: injected.replacedInit }),
      });
      const buildMs = Math.round(performance.now() - started);
      this.#log.info(
        {
          image: image.reference,
          digest,
          buildMs,
          sizeBytes,
          contentBytes: usage.dataBytes,
          replacedInit: injected.replacedInit,
        },
        "image rootfs built",
      );
      return {
        path: this.cache.imagePath(digest),
        manifestDigest: digest,
        sizeBytes,
        outcome: "built",
        buildMs,
      };
    } catch (err) {
      throw mapDiskError(err, `building the rootfs of image ${image.reference}`);
    }
  }
}

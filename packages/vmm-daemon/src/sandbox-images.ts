/**
 * Create with `image` for the daemon's SandboxManager: the registry image
 * store as the source, the rootfs builder (which takes the guest agent from
 * the default rootfs, built by guest/rootfs/build-rootfs.sh, so image
 * sandboxes run the agent plain ones do) and `[images] pull`.
 */
import { isAbsolute, join } from "node:path";
import {
  type ImagePullPolicy,
  ImageRootfsBuilder,
  type ImageStore,
  type Logger,
  SandboxImages,
} from "@vmm/core";
import type { ImageApi } from "@vmm/grpc";

/** SandboxImages over the image store. */
export function sandboxImagesFromConfig(options: {
  readonly source: ImageStore;
  readonly dataDir: string;
  readonly imagesDir: string;
  /** `[defaults] rootfs`: the agent is copied out of it. */
  readonly defaultRootfs: string;
  readonly pull: ImagePullPolicy;
  readonly logger: Logger;
}): SandboxImages {
  const rootfs = isAbsolute(options.defaultRootfs)
    ? options.defaultRootfs
    : join(options.imagesDir, options.defaultRootfs);
  return new SandboxImages({
    source: options.source,
    builder: new ImageRootfsBuilder({
      dataDir: options.dataDir,
      agent: { fromRootfs: rootfs },
      logger: options.logger,
    }),
    pull: options.pull,
  });
}

/**
 * ImageService's view of the store: RemoveImage also drops the image's
 * cached rootfs once no other reference names the same manifest (the store
 * itself refuses while a sandbox or snapshot uses it).
 */
export function imageApiWithRootfs(store: ImageStore, builder: ImageRootfsBuilder): ImageApi {
  return {
    pull: (reference, options) => store.pull(reference, options),
    list: () => store.list(),
    async remove(reference) {
      const removed = await store.remove(reference);
      const still = (await store.list()).some((i) => i.manifestDigest === removed.manifestDigest);
      if (!still) await builder.remove(removed.manifestDigest);
      return removed;
    },
  };
}

/**
 * Create with `image` for the daemon's SandboxManager. The rootfs builder
 * takes the guest agent from the default rootfs (built by
 * guest/rootfs/build-rootfs.sh), so image sandboxes run the agent plain ones
 * do. Interim source of images, until the registry image store is wired in:
 * an OCI image layout directory named by VMM_IMAGE_LAYOUT (images found by
 * their `org.opencontainers.image.ref.name`), with the pull policy in
 * VMM_IMAGE_PULL (`missing`, `always`, `never`; default `missing`). Without
 * VMM_IMAGE_LAYOUT, Create with `image` answers UNIMPLEMENTED.
 */
import { isAbsolute, join } from "node:path";
import {
  type ImagePullPolicy,
  ImageRootfsBuilder,
  type Logger,
  OciLayoutImageSource,
  SandboxImages,
} from "@vmm/core";

/** SandboxImages from the environment (see the module comment), or undefined when off. */
export function sandboxImagesFromEnv(options: {
  readonly env: NodeJS.ProcessEnv;
  readonly dataDir: string;
  readonly imagesDir: string;
  /** `[defaults] rootfs`: the agent is copied out of it. */
  readonly defaultRootfs: string;
  readonly logger: Logger;
}): SandboxImages | undefined {
  const layout = options.env.VMM_IMAGE_LAYOUT;
  if (!layout) return undefined;
  const pull = options.env.VMM_IMAGE_PULL ?? "missing";
  if (pull !== "missing" && pull !== "always" && pull !== "never") {
    throw new Error(`VMM_IMAGE_PULL must be missing, always or never, got ${JSON.stringify(pull)}`);
  }
  const rootfs = isAbsolute(options.defaultRootfs)
    ? options.defaultRootfs
    : join(options.imagesDir, options.defaultRootfs);
  return new SandboxImages({
    source: new OciLayoutImageSource(layout),
    builder: new ImageRootfsBuilder({
      dataDir: options.dataDir,
      agent: { fromRootfs: rootfs },
      logger: options.logger,
    }),
    pull: pull as ImagePullPolicy,
  });
}

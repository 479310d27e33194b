import { join, normalize } from "node:path";
import { FORBIDDEN_IMAGE_TREES, isInside } from "@vmm/core";
import { ConfigError } from "./config/load-config.js";
import type { Config } from "./config/schema.js";

/** Where request images may come from (see vmm-core `resolveImage`). */
export interface ImageRoots {
  /** `storage.images_dir`, or `<data_dir>/images` when empty. */
  readonly imagesDir: string;
  /** `storage.allowed_image_roots`, normalized. */
  readonly allowedRoots: readonly string[];
}

/**
 * Reads and checks the image roots of `config`. ConfigError when a root is
 * relative, lies in /proc, /sys or /dev, or inside data_dir (the daemon's
 * private files: other sandboxes' disks, snapshot memory), and when images_dir
 * is data_dir or contains it (every name would then reach those files).
 */
export function imageRootsFromConfig(config: Config): ImageRoots {
  const dataDir = normalize(config.firecracker.data_dir);
  const imagesDir = normalize(
    config.storage.images_dir !== "" ? config.storage.images_dir : join(dataDir, "images"),
  );
  if (isInside(dataDir, imagesDir)) {
    throw new ConfigError(
      `storage.images_dir ${imagesDir} contains firecracker.data_dir ${dataDir}: requests could name other sandboxes' disks and snapshot memory; use a separate directory (default <data_dir>/images)`,
    );
  }
  const allowedRoots = config.storage.allowed_image_roots.map((root) => {
    if (!root.startsWith("/")) {
      throw new ConfigError(
        `storage.allowed_image_roots: ${JSON.stringify(root)} is not an absolute path`,
      );
    }
    const r = normalize(root);
    if (FORBIDDEN_IMAGE_TREES.some((t) => isInside(r, t))) {
      throw new ConfigError(
        `storage.allowed_image_roots: ${r} is under ${FORBIDDEN_IMAGE_TREES.join(", ")}, which are never images`,
      );
    }
    if (isInside(r, dataDir) && !isInside(r, imagesDir)) {
      throw new ConfigError(
        `storage.allowed_image_roots: ${r} is inside firecracker.data_dir ${dataDir}, the daemon's private files; put images in storage.images_dir or elsewhere`,
      );
    }
    return r;
  });
  return { imagesDir, allowedRoots };
}

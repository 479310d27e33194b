/**
 * What Create does with an `image`: find it in the image store (pulling it
 * when the pull policy says so), then build or reuse its rootfs. Each
 * sandbox then clones that rootfs like any other (storage/).
 */
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import type { ImageRootfs, ImageRootfsBuilder } from "./rootfs-builder.js";
import type { ImageSource, PulledImage } from "./types.js";

/**
 * When Create pulls an image (config `[images] pull`): `missing` pulls one
 * that was never pulled, `always` pulls every time (a moved tag is followed),
 * `never` fails with FAILED_PRECONDITION when it was not pulled beforehand.
 */
export type ImagePullPolicy = "missing" | "always" | "never";

/** Options of {@link SandboxImages}. */
export interface SandboxImagesOptions {
  readonly source: ImageSource;
  readonly builder: ImageRootfsBuilder;
  /** Default "missing". */
  readonly pull?: ImagePullPolicy;
}

/** An image resolved for a Create: the stored image and its rootfs. */
export interface ResolvedSandboxImage {
  readonly image: PulledImage;
  readonly rootfs: ImageRootfs;
}

/** Longest image reference accepted (registry host, path, tag and digest fit easily). */
export const IMAGE_REFERENCE_MAX_BYTES = 1024;

/** Resolves Create's `image` to a rootfs (see the module comment). */
export class SandboxImages {
  readonly #opts: SandboxImagesOptions;

  constructor(options: SandboxImagesOptions) {
    this.#opts = options;
  }

  /** The builder (for RemoveImage: its cached rootfs). */
  get builder(): ImageRootfsBuilder {
    return this.#opts.builder;
  }

  /**
   * The image named by `reference` and its rootfs. Errors name the field
   * `image`: INVALID_ARGUMENT for a malformed reference or an image whose
   * layers are refused, FAILED_PRECONDITION when it is not pulled and the
   * policy is `never`; the store's own errors (NOT_FOUND, UNAVAILABLE, …)
   * pass through.
   */
  async resolve(reference: string, signal?: AbortSignal): Promise<ResolvedSandboxImage> {
    if (reference.length === 0 || Buffer.byteLength(reference) > IMAGE_REFERENCE_MAX_BYTES) {
      throw new InvalidArgumentError("image", `must be 1-${IMAGE_REFERENCE_MAX_BYTES} bytes`);
    }
    if (/[\s\0]/.test(reference) || /\p{Cc}/u.test(reference)) {
      throw new InvalidArgumentError("image", "must not contain spaces or control characters");
    }
    const { source, builder } = this.#opts;
    const policy = this.#opts.pull ?? "missing";
    let image = policy === "always" ? undefined : await source.lookup(reference);
    if (!image) {
      if (policy === "never") {
        throw new FailedPreconditionError(
          `image ${JSON.stringify(reference)} not pulled, and this daemon does not pull on Create ([images] pull = "never")`,
          { hint: `run vmm image pull ${reference}` },
        );
      }
      image = await source.pull(reference, signal ? { signal } : {});
    }
    if (image.config.os !== "linux" || image.config.architecture !== "amd64") {
      throw new FailedPreconditionError(
        `image ${JSON.stringify(reference)} is for ${image.config.os}/${image.config.architecture}; sandboxes run linux/amd64`,
      );
    }
    return { image, rootfs: await builder.rootfs(image, source) };
  }
}

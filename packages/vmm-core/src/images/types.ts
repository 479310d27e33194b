/**
 * The contract between the two halves of OCI image support: the image store
 * (pull from a registry into a content-addressed blob store under data_dir)
 * and the rootfs builder (layers → a bootable ext4 image, cached by manifest
 * digest). Create with `image` asks an {@link ImageSource} for a
 * {@link PulledImage}, then the builder for its rootfs.
 */

/** An OCI content descriptor (image-spec descriptor.md). */
export interface OciDescriptor {
  readonly mediaType: string;
  /** `sha256:<64 hex>`. */
  readonly digest: string;
  readonly size: number;
}

/** The parts of an OCI image config (image-spec config.md) a sandbox uses. */
export interface OciImageConfig {
  readonly architecture: string;
  readonly os: string;
  readonly created?: string;
  readonly config?: {
    readonly User?: string;
    readonly Env?: readonly string[];
    readonly Entrypoint?: readonly string[] | null;
    readonly Cmd?: readonly string[] | null;
    readonly WorkingDir?: string;
    readonly Labels?: Readonly<Record<string, string>> | null;
  };
  readonly rootfs: { readonly type: "layers"; readonly diff_ids: readonly string[] };
}

/** An image whose manifest, config and every layer blob are in the store, verified. */
export interface PulledImage {
  /** The normalized reference it was pulled by, e.g. `docker.io/library/busybox:latest`. */
  readonly reference: string;
  /** Digest of the linux/amd64 image manifest (not of an index). The cache key. */
  readonly manifestDigest: string;
  readonly config: OciImageConfig;
  readonly configDescriptor: OciDescriptor;
  /** In application order (base first). */
  readonly layers: readonly OciDescriptor[];
  /** Sum of the config and layer blob sizes (compressed, as stored). */
  readonly sizeBytes: number;
  /** When it was pulled (Unix ms). */
  readonly pulledAtMs: number;
}

/** Progress of one pull, as reported to PullImage streams. */
export interface ImagePullProgress {
  readonly status: string;
  readonly currentBytes: number;
  readonly totalBytes: number;
  readonly digest: string;
  readonly done: boolean;
}

/** What Create needs from the image store. */
export interface ImageSource {
  /** The stored image for a reference, or undefined when it was never pulled. */
  lookup(reference: string): Promise<PulledImage | undefined>;
  /** Pulls (or joins a pull already under way), verified; resolves once every blob is stored. */
  pull(
    reference: string,
    options?: { onProgress?: (p: ImagePullProgress) => void; signal?: AbortSignal },
  ): Promise<PulledImage>;
  /** Absolute path of a stored blob (`<store>/blobs/sha256/<hex>`), verified when it was stored. */
  blobPath(digest: string): string;
}

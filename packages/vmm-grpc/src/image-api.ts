import type { ImagePullProgress, PulledImage } from "@vmm/core";

/** What the ImageService needs from vmm-core (ImageStore implements it). */
export interface ImageApi {
  pull(
    reference: string,
    options: { onProgress?: (p: ImagePullProgress) => void; signal?: AbortSignal },
  ): Promise<PulledImage>;
  list(): Promise<PulledImage[]>;
  remove(reference: string): Promise<unknown>;
}

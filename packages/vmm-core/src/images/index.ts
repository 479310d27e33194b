// OCI images: references, the registry client, the content-addressed store.
export type { BlobSource } from "./blob-store.js";
export type { ImageRecord } from "./image-records.js";
export type { ImageReference } from "./image-reference.js";
export { DEFAULT_REGISTRY, parseImageReference } from "./image-reference.js";
export type { ImageInUse, ImageStoreOptions } from "./image-store.js";
export { DEFAULT_MAX_LAYER_BYTES, ImageStore } from "./image-store.js";
export type { RegistryCredentials } from "./registry-auth.js";
export type { RegistryClientOptions } from "./registry-client.js";
export { RegistryClient } from "./registry-client.js";
export type {
  ImagePullProgress,
  ImageSource,
  OciDescriptor,
  OciImageConfig,
  PulledImage,
} from "./types.js";

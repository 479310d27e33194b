// OCI images: the contract (types.ts), the registry client and content-addressed store, the
// rootfs builder and Create's use of them.
export type { AgentBinarySource } from "./agent-binary.js";
export type { BlobSource } from "./blob-store.js";
export type { ImageProcessDefaults } from "./image-defaults.js";
export { imageProcessDefaults, withImageDefaults } from "./image-defaults.js";
export type { ImageRecord } from "./image-records.js";
export type { ImageReference } from "./image-reference.js";
export { DEFAULT_REGISTRY, parseImageReference } from "./image-reference.js";
export type { ImageInUse, ImageStoreOptions } from "./image-store.js";
export { DEFAULT_MAX_LAYER_BYTES, ImageStore } from "./image-store.js";
export { SUPPORTED_LAYER_MEDIA_TYPES } from "./layer-media.js";
export type { LayerBlob } from "./oci-layout-source.js";
export { OciLayoutImageSource, writeOciLayoutImage } from "./oci-layout-source.js";
export type { RegistryCredentials } from "./registry-auth.js";
export type { RegistryClientOptions } from "./registry-client.js";
export { RegistryClient } from "./registry-client.js";
export type { ImageRootfs, ImageRootfsBuilderOptions } from "./rootfs-builder.js";
export { ImageRootfsBuilder } from "./rootfs-builder.js";
export type {
  ImagePullPolicy,
  ResolvedSandboxImage,
  SandboxImagesOptions,
} from "./sandbox-images.js";
export { IMAGE_REFERENCE_MAX_BYTES, SandboxImages } from "./sandbox-images.js";
export type {
  ImagePullProgress,
  ImageSource,
  OciDescriptor,
  OciImageConfig,
  PulledImage,
} from "./types.js";

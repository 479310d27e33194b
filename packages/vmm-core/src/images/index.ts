// OCI images: the contract with the image store (types.ts) and the rootfs builder.
export type { AgentBinarySource } from "./agent-binary.js";
export type { ImageProcessDefaults } from "./image-defaults.js";
export { imageProcessDefaults, withImageDefaults } from "./image-defaults.js";
export { SUPPORTED_LAYER_MEDIA_TYPES } from "./layer-media.js";
export type { LayerBlob } from "./oci-layout-source.js";
export { OciLayoutImageSource, writeOciLayoutImage } from "./oci-layout-source.js";
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

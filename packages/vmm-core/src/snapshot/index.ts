export { PendingSnapshot, type SnapshotFilePaths } from "./pending-snapshot.js";
export {
  type CatalogOpenReport,
  type DeleteSnapshotOptions,
  type DeleteSnapshotResult,
  type ListSnapshotsFilter,
  SnapshotCatalog,
  type SnapshotCatalogOptions,
  type SnapshotEntry,
  type UnusableSnapshot,
  type UsableSnapshot,
  type VerifyResult,
} from "./snapshot-catalog.js";
export {
  type GuestNetwork,
  type ImageRef,
  parseSnapshotMeta,
  SNAPSHOT_FILES,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotDataFile,
  type SnapshotFileInfo,
  type SnapshotMeta,
  type SnapshotSpec,
} from "./snapshot-meta.js";

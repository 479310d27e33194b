import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { InvalidArgumentError, type SnapshotView } from "@vmm/core";
import * as pb from "@vmm/proto";
import { DEFAULT_LIST_PAGING, type ListPaging, takePage } from "./list-page.js";
import type { SnapshotApi } from "./snapshot-api.js";

/**
 * Registers sandbox.v1.SandboxSnapshotService. Without a SnapshotApi every
 * method answers UNIMPLEMENTED, naming the missing feature. ListSnapshots
 * pages per `paging`.
 */
export function registerSnapshotService(
  router: ConnectRouter,
  snapshots: SnapshotApi | undefined,
  paging: ListPaging = DEFAULT_LIST_PAGING,
): void {
  const api = (): SnapshotApi => {
    if (snapshots) return snapshots;
    throw new ConnectError(
      "snapshots (Checkpoint, Restore, ListSnapshots, DeleteSnapshot) are not built yet in this daemon",
      Code.Unimplemented,
    );
  };
  router.service(pb.SandboxSnapshotService, {
    async checkpoint(req) {
      if (req.sandboxId === "") throw new InvalidArgumentError("sandbox_id", "must not be empty");
      const snap = await api().checkpoint({
        sandboxId: req.sandboxId,
        name: req.name === "" ? undefined : req.name,
        labels: req.labels,
      });
      return {
        snapshotId: snap.id,
        snapshotDir: snap.dir,
        createdAt: snap.createdAt.toISOString(),
      };
    },
    async restore(req) {
      if (req.snapshotId === "") throw new InvalidArgumentError("snapshot_id", "must not be empty");
      const view = await api().restore({
        id: req.id === "" ? undefined : req.id,
        snapshotId: req.snapshotId,
        labels: req.labels,
        ttlSeconds: req.ttlSeconds,
      });
      return { id: view.id, ipAddress: view.network?.ipAddress ?? "" };
    },
    async listSnapshots(req) {
      const list = await api().list({
        ...(req.sandboxId !== "" && { originSandboxId: req.sandboxId }),
        labels: req.labels,
      });
      const page = takePage<SnapshotView>(
        list,
        {
          listing: "snapshots",
          filter: { sandboxId: req.sandboxId, labels: req.labels },
          pageSize: req.pageSize,
          pageToken: req.pageToken,
          keyOf: (s) => ({ createdAtMs: s.createdAt.getTime(), id: s.id }),
          sizeOf: (s) =>
            toBinary(
              pb.SnapshotSummarySchema,
              create(pb.SnapshotSummarySchema, snapshotSummaryToProto(s)),
            ).length,
        },
        paging,
      );
      return {
        snapshots: page.items.map(snapshotSummaryToProto),
        nextPageToken: page.nextPageToken,
      };
    },
    async deleteSnapshot(req) {
      if (req.snapshotId === "") throw new InvalidArgumentError("snapshot_id", "must not be empty");
      await api().delete(req.snapshotId);
      return {};
    },
  });
}

function snapshotSummaryToProto(s: SnapshotView): Omit<pb.SnapshotSummary, "$typeName"> {
  return {
    id: s.id,
    sandboxId: s.originSandboxId,
    name: s.name,
    labels: { ...s.labels },
    snapshotDir: s.dir,
    createdAt: s.createdAt.toISOString(),
    usable: s.usable,
    unusableReason: s.unusableReason ?? "",
    sizeBytes: BigInt(s.sizeBytes),
    imageDigest: s.imageDigest ?? "",
  };
}

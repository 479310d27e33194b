import type { SandboxView, SnapshotView } from "@vmm/core";

/** What the SandboxSnapshotService needs from vmm-core. */
export interface SnapshotApi {
  checkpoint(req: {
    sandboxId: string;
    name: string | undefined;
    labels: Readonly<Record<string, string>>;
  }): Promise<SnapshotView>;
  restore(req: {
    id: string | undefined;
    snapshotId: string;
    labels: Readonly<Record<string, string>>;
    ttlSeconds: number;
  }): Promise<SandboxView>;
  list(filter: {
    originSandboxId?: string;
    labels: Readonly<Record<string, string>>;
  }): Promise<SnapshotView[]>;
  delete(snapshotId: string): Promise<void>;
}

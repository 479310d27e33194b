import type { SnapshotSummary } from "@vmm/proto";
import type { Api } from "./api.js";
import { formatLabels, h, replaceChildren } from "./dom.js";

/** Options of `SnapshotsView`. */
export interface SnapshotsViewOptions {
  readonly api: Api;
  readonly onError: (action: string, err: unknown) => void;
  /** Called after a restore, with the new sandbox's id. */
  readonly onRestored: (id: string) => void;
}

/** The snapshot catalog: restore a snapshot into a new sandbox, or delete it. */
export class SnapshotsView {
  readonly el: HTMLElement;
  private readonly body = h("tbody");
  private readonly options: SnapshotsViewOptions;

  constructor(options: SnapshotsViewOptions) {
    this.options = options;
    this.el = h(
      "section",
      { id: "snapshots" },
      h(
        "h2",
        {},
        "Snapshots ",
        h("button", { type: "button", onclick: () => void this.refresh() }, "Refresh"),
      ),
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["ID", "Name", "Sandbox", "Labels", "Created", "Size", "Usable", ""].map((c) =>
              h("th", {}, c),
            ),
          ),
        ),
        this.body,
      ),
    );
  }

  /** Lists every page of the catalog. */
  async refresh(): Promise<void> {
    try {
      const all: SnapshotSummary[] = [];
      let pageToken = "";
      do {
        const page = await this.options.api.snapshots.listSnapshots({ pageToken });
        all.push(...page.snapshots);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      this.render(all);
    } catch (err) {
      this.options.onError("Listing snapshots", err);
    }
  }

  private render(snapshots: readonly SnapshotSummary[]): void {
    if (snapshots.length === 0) {
      replaceChildren(this.body, h("tr", {}, h("td", { colspan: "8", class: "empty" }, "none")));
      return;
    }
    replaceChildren(
      this.body,
      ...snapshots.map((s) =>
        h(
          "tr",
          { "data-id": s.id },
          h("td", {}, s.id),
          h("td", {}, s.name),
          h("td", {}, s.sandboxId),
          h("td", {}, formatLabels(s.labels)),
          h("td", {}, s.createdAt),
          h("td", {}, formatBytes(s.sizeBytes)),
          h("td", { title: s.unusableReason }, s.usable ? "yes" : `no: ${s.unusableReason}`),
          h(
            "td",
            {},
            h(
              "button",
              { type: "button", disabled: !s.usable, onclick: () => void this.restore(s) },
              "Restore",
            ),
            " ",
            h("button", { type: "button", onclick: () => void this.remove(s) }, "Delete"),
          ),
        ),
      ),
    );
  }

  private async restore(s: SnapshotSummary): Promise<void> {
    const id = prompt(`Restore ${s.id} as a new sandbox with id (empty: generated)`, "");
    if (id === null) return;
    try {
      const restored = await this.options.api.snapshots.restore({ snapshotId: s.id, id });
      this.options.onRestored(restored.id);
    } catch (err) {
      this.options.onError(`Restore ${s.id}`, err);
    }
  }

  private async remove(s: SnapshotSummary): Promise<void> {
    if (!confirm(`Delete snapshot ${s.id}?`)) return;
    try {
      await this.options.api.snapshots.deleteSnapshot({ snapshotId: s.id });
    } catch (err) {
      this.options.onError(`Delete snapshot ${s.id}`, err);
    }
    await this.refresh();
  }
}

function formatBytes(n: bigint): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

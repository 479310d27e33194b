import type { ListSandboxesResponse, ListSnapshotsResponse } from "@vmm/proto";
import type { Clients } from "./client.js";

/** Pages fetched at most by one listing: a daemon that never ends its pages cannot hang the CLI. */
const MAX_PAGES = 10_000;

/**
 * Every sandbox matching `filter`, following next_page_token to the last
 * page; one response holding them all (next_page_token empty).
 */
export async function listAllSandboxes(
  clients: Clients,
  filter: { state?: string; labels?: Record<string, string> },
  signal: AbortSignal,
): Promise<ListSandboxesResponse> {
  let pageToken = "";
  let all: ListSandboxesResponse | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const res = await clients.sandbox.list({ ...filter, pageToken }, { signal });
    if (all) all.sandboxes.push(...res.sandboxes);
    else all = res;
    pageToken = res.nextPageToken;
    if (pageToken === "") break;
  }
  all!.nextPageToken = "";
  return all!;
}

/** Every snapshot matching `filter`, following next_page_token (see `listAllSandboxes`). */
export async function listAllSnapshots(
  clients: Clients,
  filter: { sandboxId?: string; labels?: Record<string, string> },
  signal: AbortSignal,
): Promise<ListSnapshotsResponse> {
  let pageToken = "";
  let all: ListSnapshotsResponse | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const res = await clients.snapshot.listSnapshots({ ...filter, pageToken }, { signal });
    if (all) all.snapshots.push(...res.snapshots);
    else all = res;
    pageToken = res.nextPageToken;
    if (pageToken === "") break;
  }
  all!.nextPageToken = "";
  return all!;
}

import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => "OK",
    (e: unknown) => (e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : String(e)),
  );

describe("List and ListSnapshots paging over gRPC with fc-sim", () => {
  let d: SimDaemon;
  const ids = Array.from({ length: 25 }, (_, i) => `pg-${String(i).padStart(2, "0")}`);
  beforeAll(async () => {
    d = await startSimDaemon({
      grpc: "list_page_size = 10",
      sections:
        "[limits]\nmax_concurrent_creates = 32\nmax_sandboxes = 32\n[agent]\nboot_timeout_ms = 60000",
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
    // One at a time: created_at (ms) then id is the order; ids sort like creation here.
    for (const id of ids) await d.sandboxes.create({ id, labels: { suite: "paging" } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("25 sandboxes, page_size 10: three pages, every id once, in order", async () => {
    const pages: string[][] = [];
    let pageToken = "";
    do {
      const res = await d.sandboxes.list({ labels: { suite: "paging" }, pageSize: 10, pageToken });
      pages.push(res.sandboxes.map((s) => s.id));
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(ids);
  });

  it("page_size 0 is the configured default and a larger one is capped by it", async () => {
    expect((await d.sandboxes.list({})).sandboxes).toHaveLength(10);
    expect((await d.sandboxes.list({ pageSize: 500 })).sandboxes).toHaveLength(10);
  });

  it("a sandbox removed between pages breaks nothing", async () => {
    const first = await d.sandboxes.list({ labels: { suite: "paging" }, pageSize: 10 });
    expect(first.sandboxes.at(-1)?.id).toBe("pg-09");
    await d.sandboxes.remove({ id: "pg-09", force: true }); // the cursor's own item
    await d.sandboxes.remove({ id: "pg-12", force: true }); // one of the next page
    const second = await d.sandboxes.list({
      labels: { suite: "paging" },
      pageSize: 10,
      pageToken: first.nextPageToken,
    });
    expect(second.sandboxes.map((s) => s.id)).toEqual(["pg-10", "pg-11", ...ids.slice(13, 21)]);
  });

  it("a malformed or foreign page_token is INVALID_ARGUMENT", async () => {
    const token = (await d.sandboxes.list({ pageSize: 2 })).nextPageToken;
    expect(token).not.toBe("");
    await expect(outcome(d.sandboxes.list({ pageToken: "garbage!" }))).resolves.toMatch(
      /^InvalidArgument: page_token: is not a page token of this daemon/,
    );
    await expect(outcome(d.sandboxes.list({ state: "ready", pageToken: token }))).resolves.toMatch(
      /^InvalidArgument: page_token: was made for another listing or other filters/,
    );
    await expect(outcome(d.snapshots.listSnapshots({ pageToken: token }))).resolves.toMatch(
      /^InvalidArgument: page_token: was made for another listing/,
    );
  });

  it("ListSnapshots pages the same way", async () => {
    await waitForState(d, "pg-00", "ready", 60_000);
    const snaps: string[] = [];
    for (let i = 0; i < 5; i++) {
      snaps.push((await d.snapshots.checkpoint({ sandboxId: "pg-00", name: `p${i}` })).snapshotId);
    }
    const pages: string[][] = [];
    let pageToken = "";
    do {
      const res = await d.snapshots.listSnapshots({ sandboxId: "pg-00", pageSize: 2, pageToken });
      pages.push(res.snapshots.map((s) => s.id));
      pageToken = res.nextPageToken;
      // The next page's first snapshot goes meanwhile (once).
      if (pages.length === 1) await d.snapshots.deleteSnapshot({ snapshotId: snaps[2]! });
    } while (pageToken !== "");
    expect(pages.map((p) => p.length)).toEqual([2, 2]);
    expect(pages.flat()).toEqual([snaps[0], snaps[1], snaps[3], snaps[4]]);
    expect((await d.snapshots.listSnapshots({ pageSize: 99 })).snapshots).toHaveLength(4);
    await expect(
      outcome(d.snapshots.listSnapshots({ sandboxId: "pg-01", pageToken: "eyJ2IjoxfQ" })),
    ).resolves.toMatch(/^InvalidArgument: page_token/);
  });
});

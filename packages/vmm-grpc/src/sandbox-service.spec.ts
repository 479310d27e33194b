import { toBinary, toJsonString } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { compareByCreation, NotFoundError, type SandboxView } from "@vmm/core";
import * as pb from "@vmm/proto";
import { describe, expect, it } from "vitest";
import type { ListPaging } from "./list-page.js";
import type { SandboxApi } from "./sandbox-api.js";
import { registerSandboxService } from "./sandbox-service.js";

// List and Inspect over an in-memory SandboxApi that behaves like
// SandboxManager: the same frozen view while a sandbox is unchanged, a new
// frozen one after any change. The service caches messages per view object.

function view(id: string, over: Partial<SandboxView> = {}): SandboxView {
  return Object.freeze({
    id,
    state: "ready",
    labels: Object.freeze({ app: "web" }),
    vcpus: 1,
    memoryMib: 128,
    network: undefined,
    kernel: "vmlinux",
    rootfs: "rootfs.ext4",
    bootArgs: "console=ttyS0",
    createdAt: new Date(1_700_000_000_000),
    readyAt: undefined,
    lastExitedAt: undefined,
    lastExitCode: undefined,
    error: undefined,
    createdFrom: "boot",
    snapshotId: undefined,
    pid: undefined,
    expiresAt: undefined,
    pausedAt: undefined,
    diskBytes: 0,
    networkPolicy: undefined,
    exposedPorts: [],
    image: undefined,
    imageDigest: undefined,
    ...over,
  } satisfies SandboxView);
}

/** A SandboxApi over a map the test edits: `set` replaces a sandbox's view. */
function fakeApi(): { api: SandboxApi; views: Map<string, SandboxView> } {
  const views = new Map<string, SandboxView>();
  const unused = () => {
    throw new Error("not used by these specs");
  };
  const api: SandboxApi = {
    create: unused,
    run: unused,
    exec: unused,
    stop: unused,
    pause: unused,
    resume: unused,
    updateNetworkPolicy: unused,
    exposePort: unused,
    remove: unused,
    events: unused,
    listProcesses: unused,
    signalProcess: unused,
    inspect(id) {
      const v = views.get(id);
      if (v === undefined) throw new NotFoundError("sandbox", id);
      return v;
    },
    list: () => [...views.values()].sort(compareByCreation),
  };
  return { api, views };
}

function client(api: SandboxApi, paging?: ListPaging) {
  return createClient(
    pb.SandboxService,
    createRouterTransport((router) => registerSandboxService(router, api, paging)),
  );
}

describe("SandboxService List/Inspect with cached messages", () => {
  it("each change of a view shows in the next Inspect and List, field by field", async () => {
    const { api, views } = fakeApi();
    const c = client(api);
    const changes: [string, Partial<SandboxView>][] = [
      ["starting", { state: "starting" }],
      ["ready", { state: "ready", readyAt: new Date(1_700_000_001_000) }],
      ["running", { state: "running", readyAt: new Date(1_700_000_001_000) }],
      [
        "exit 3",
        {
          readyAt: new Date(1_700_000_001_000),
          lastExitCode: 3,
          lastExitedAt: new Date(1_700_000_002_000),
        },
      ],
      [
        "exit 0, same exit time",
        {
          readyAt: new Date(1_700_000_001_000),
          lastExitCode: 0,
          lastExitedAt: new Date(1_700_000_002_000),
        },
      ],
      ["failed", { state: "failed", error: "firecracker exited: killed by SIGKILL" }],
    ];
    for (const [what, over] of changes) {
      views.set("a", view("a", over));
      // Twice: the second answer comes from the cache.
      for (let i = 0; i < 2; i++) {
        const info = await c.inspect({ id: "a" });
        const want = view("a", over);
        expect(info.state, what).toBe(want.state);
        expect(info.readyAt, what).toBe(want.readyAt ? BigInt(want.readyAt.getTime() / 1000) : 0n);
        expect(info.lastExitCode, what).toBe(want.lastExitCode ?? 0);
        expect(info.lastExitedAt, what).toBe(
          want.lastExitedAt ? BigInt(want.lastExitedAt.getTime() / 1000) : 0n,
        );
        expect(info.error, what).toBe(want.error ?? "");
        expect(info.labels, what).toEqual({ app: "web" });
        const listed = (await c.list({})).sandboxes;
        expect(
          listed.map((s) => [s.id, s.state, s.labels]),
          what,
        ).toEqual([["a", want.state, { app: "web" }]]);
      }
    }
  });

  it("a view that is not frozen is never cached: an in-place change shows", async () => {
    const { api, views } = fakeApi();
    const c = client(api);
    const mutable = { ...view("m") } as { -readonly [K in keyof SandboxView]: SandboxView[K] };
    views.set("m", mutable);
    expect((await c.inspect({ id: "m" })).state).toBe("ready");
    expect((await c.list({})).sandboxes[0]?.state).toBe("ready");
    mutable.state = "stopped";
    mutable.lastExitCode = 9;
    expect(await c.inspect({ id: "m" })).toMatchObject({ state: "stopped", lastExitCode: 9 });
    expect((await c.list({})).sandboxes[0]?.state).toBe("stopped");
  });

  it("pages stay within the byte budget with cached sizes, also after views change size", async () => {
    const { api, views } = fakeApi();
    const paging: ListPaging = { pageSize: 1000, maxMessageBytes: 16 * 1024 };
    const c = client(api, paging);
    const big = (i: number, state: SandboxView["state"], scale = 1) =>
      view(`s-${String(i).padStart(3, "0")}`, {
        state,
        labels: Object.freeze({ note: "x".repeat((200 + (i % 7) * 50) * scale) }),
        createdAt: new Date(1_700_000_000_000 + i),
      });
    for (let i = 0; i < 120; i++) views.set(big(i, "ready").id, big(i, "ready"));
    const pages = async () => {
      const out: pb.ListSandboxesResponse[] = [];
      let pageToken = "";
      do {
        const res = await c.list({ pageToken });
        out.push(res);
        pageToken = res.nextPageToken;
      } while (pageToken !== "" && out.length < 100);
      return out;
    };
    const check = (ps: pb.ListSandboxesResponse[], state: string) => {
      expect(ps.flatMap((p) => p.sandboxes.map((s) => s.id))).toEqual([...views.keys()].sort());
      for (const p of ps) {
        expect(p.sandboxes.every((s) => s.state === state)).toBe(true);
        const itemBytes = p.sandboxes.reduce(
          (n, s) => n + toBinary(pb.SandboxSummarySchema, s).length + 64,
          0,
        );
        expect(itemBytes).toBeLessThanOrEqual(paging.maxMessageBytes / 2);
        expect(toBinary(pb.ListSandboxesResponseSchema, p).length).toBeLessThanOrEqual(
          paging.maxMessageBytes,
        );
        expect(
          Buffer.byteLength(toJsonString(pb.ListSandboxesResponseSchema, p)),
        ).toBeLessThanOrEqual(paging.maxMessageBytes);
      }
    };
    const first = await pages();
    expect(first.length).toBeGreaterThan(2);
    check(first, "ready");
    const again = await pages();
    expect(again.map((p) => p.sandboxes.length)).toEqual(first.map((p) => p.sandboxes.length));
    // New views of the same sandboxes, three times the size: their own sizes are used, not the
    // ones cached for the old views (a cache by id would put ~3× the budget in a page).
    for (let i = 0; i < 120; i++) views.set(big(i, "stopping").id, big(i, "stopping", 3));
    const grown = await pages();
    check(grown, "stopping");
    expect(grown.length).toBeGreaterThan(first.length * 2);
  });
});

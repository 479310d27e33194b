import { create } from "@bufbuild/protobuf";
import { PullProgressSchema } from "@vmm/proto";
import { describe, expect, it } from "vitest";
import type { OutputStream } from "../command.js";
import { createPullProgress } from "./image.js";

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const out: OutputStream = {
    isTTY,
    write: (c) => {
      chunks.push(String(c));
      return true;
    },
    once: () => undefined,
  };
  return { out, text: () => chunks.join("") };
}

const MiB = 1n << 20n;
const msg = (status: string, cur: bigint, total: bigint, digest: string, done = false) =>
  create(PullProgressSchema, { status, currentBytes: cur, totalBytes: total, digest, done });

describe("createPullProgress", () => {
  it("draws one redrawn bar line on a terminal, at most every 100 ms, and ends it", async () => {
    const s = sink(true);
    let t = 0;
    const view = createPullProgress(s.out, "r/app:v1", () => t);
    await view.update(msg("resolving", 0n, 0n, ""));
    t = 1000;
    await view.update(msg("downloading", 5n * MiB, 10n * MiB, "sha256:aa"));
    t = 1050; // within 100 ms: not drawn
    await view.update(msg("downloading", 6n * MiB, 10n * MiB, "sha256:aa"));
    t = 2000;
    await view.update(msg("pulled", 10n * MiB, 10n * MiB, "sha256:mm", true));
    view.stop();
    view.stop();
    const frames = s.text().split("\r\x1b[K").filter(Boolean);
    expect(frames).toEqual([
      "r/app:v1 resolving…",
      `r/app:v1 [${"#".repeat(15)}${"-".repeat(15)}] 5.0MiB/10.0MiB 5.0MiB/s`,
      `r/app:v1 [${"#".repeat(30)}] 10.0MiB/10.0MiB 5.0MiB/s\n`,
    ]);
  });

  it("prints one plain line per phase and blob otherwise", async () => {
    const s = sink(false);
    const view = createPullProgress(s.out, "r/app:v1", () => 0);
    await view.update(msg("resolving", 0n, 0n, ""));
    await view.update(msg("downloading", 0n, 10n * MiB, "sha256:aa"));
    await view.update(msg("downloading", 1n * MiB, 10n * MiB, "sha256:aa"));
    await view.update(msg("downloading", 2n * MiB, 10n * MiB, "sha256:bb"));
    await view.update(msg("pulled", 10n * MiB, 10n * MiB, "sha256:mm", true));
    view.stop();
    expect(s.text()).toBe(
      [
        "resolving r/app:v1",
        "downloading sha256:aa 0B/10.0MiB",
        "downloading sha256:bb 2.0MiB/10.0MiB",
        "pulled sha256:mm 10.0MiB/10.0MiB",
        "",
      ].join("\n"),
    );
  });
});

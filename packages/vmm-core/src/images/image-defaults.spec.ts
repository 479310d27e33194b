import { describe, expect, it } from "vitest";
import type { ProcessSpec } from "../sandbox/types.js";
import { imageProcessDefaults, withImageDefaults } from "./image-defaults.js";

const config = (c: Record<string, unknown>) =>
  ({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [] },
    config: c,
  }) as never;
const req = (over: Partial<ProcessSpec> = {}): ProcessSpec => ({
  cmd: [],
  env: {},
  tty: false,
  timeoutSeconds: 0,
  ...over,
});

describe("image process defaults", () => {
  const d = imageProcessDefaults(
    config({
      Env: ["PATH=/usr/bin:/bin", "EMPTY=", "A=x=y", "NOEQUALS"],
      WorkingDir: "/app",
      User: "app:staff",
      Entrypoint: ["/entry.sh"],
      Cmd: ["serve", "--port=80"],
    }),
  );

  it("reads Env (K=V, first '=' splits), WorkingDir, the user part of User, Entrypoint + Cmd", () => {
    expect(d).toEqual({
      cmd: ["/entry.sh", "serve", "--port=80"],
      env: { PATH: "/usr/bin:/bin", EMPTY: "", A: "x=y" },
      workingDir: "/app",
      user: "app",
    });
    expect(imageProcessDefaults(config({}))).toEqual({ cmd: [], env: {} });
  });

  it("fills only what the request left out; a request cmd replaces Entrypoint + Cmd whole", () => {
    expect(withImageDefaults(req(), d)).toMatchObject({
      cmd: d.cmd,
      env: d.env,
      workingDir: "/app",
      user: "app",
    });
    const mine = withImageDefaults(
      req({ cmd: ["ls"], env: { A: "mine", B: "b" }, workingDir: "/", user: "root" }),
      d,
    );
    expect(mine).toMatchObject({
      cmd: ["ls"],
      env: { PATH: "/usr/bin:/bin", EMPTY: "", A: "mine", B: "b" },
      workingDir: "/",
      user: "root",
    });
    expect(withImageDefaults(req({ cmd: ["ls"] }), undefined)).toEqual(req({ cmd: ["ls"] }));
  });
});

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "./config/load-config.js";
import { printConfig } from "./config/print-config.js";
import { registryCredentialsFromConfig } from "./images-config.js";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
const load = (toml: string) => {
  dir ??= mkdtempSync(join(tmpdir(), "vmmimgcfg-"));
  const f = join(dir, "c.toml");
  writeFileSync(f, toml);
  return loadConfig(f, {});
};

describe("registryCredentialsFromConfig", () => {
  it("reads password_file and token_file, dropping the trailing newline", () => {
    dir = mkdtempSync(join(tmpdir(), "vmmimgcfg-"));
    writeFileSync(join(dir, "pw"), "s3cret\n");
    writeFileSync(join(dir, "tok"), "tok3n\n");
    const { config } = load(
      `[images.registries."a.io"]\nusername = "me"\npassword_file = "${join(dir, "pw")}"\n[images.registries."b.io"]\ntoken_file = "${join(dir, "tok")}"\n`,
    );
    expect(registryCredentialsFromConfig(config)).toEqual(
      new Map([
        ["a.io", { username: "me", password: "s3cret" }],
        ["b.io", { token: "tok3n" }],
      ]),
    );
  });

  it.each([
    ['username = "u"', "needs username and password"],
    ['password = "p"', "needs username and password"],
    ['token = "t"\nusername = "u"\npassword = "p"', "either token or username + password"],
    ['username = "u"\npassword = "p"\npassword_file = "/x"', "password or password_file, not both"],
    ['username = "u"\npassword_file = "rel"', "must be an absolute path"],
    ['username = "u"\npassword_file = "/nonexistent/pw"', "/nonexistent/pw"],
  ])("rejects %j", (entry, message) => {
    const { config } = load(`[images.registries."a.io"]\n${entry}\n`);
    expect(() => registryCredentialsFromConfig(config)).toThrow(message);
  });

  it("--check-config output redacts passwords and tokens", () => {
    const loaded = load(
      '[images.registries."a.io"]\nusername = "me"\npassword = "hunter2"\n[images.registries."b.io"]\ntoken = "tok"\n',
    );
    const out = printConfig(loaded);
    expect(out).toContain('"me"');
    expect(out).not.toContain("hunter2");
    expect(out).not.toContain('"tok"');
  });
});

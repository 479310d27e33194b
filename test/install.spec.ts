import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commands } from "../packages/vmm-cli/src/commands/index.js";

const repo = resolve(import.meta.dirname, "..");

function has(bin: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}

/** Runs `bash scripts/install.sh ARGS` with this test's node; returns stderr (its log). */
function install(...args: string[]): string {
  const r = spawnSync(
    "bash",
    [join(repo, "scripts/install.sh"), "--node", process.execPath, ...args],
    {
      encoding: "utf8",
    },
  );
  if (r.status !== 0) throw new Error(`install.sh failed (${r.status}): ${r.stderr}`);
  return r.stderr;
}

describe("scripts/install.sh into a temp prefix", () => {
  let dir: string;
  let prefix: string;
  let etc: string;
  /** Runs an installed executable from another cwd with a PATH that has no node. */
  const runInstalled = (file: string, args: string[]) =>
    execFileSync(file, args, { cwd: "/", env: { PATH: join(dir, "no-node") }, encoding: "utf8" });

  beforeAll(() => {
    dir = mkdtempSync("/tmp/vmm-install-");
    prefix = join(dir, "usr");
    etc = join(dir, "etc");
    execFileSync("mkdir", [join(dir, "no-node")]);
    install("--prefix", prefix, "--sysconfdir", etc);
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("installs vmm and vmm-daemon that run from any directory without node on PATH", () => {
    const noNode = spawnSync("sh", ["-c", "command -v node"], {
      env: { PATH: join(dir, "no-node") },
    });
    expect(noNode.status).not.toBe(0);
    expect(runInstalled(join(prefix, "bin/vmm"), ["--version"])).toMatch(/^vmm \d+\.\d+\.\d+\n$/);
    expect(runInstalled(join(prefix, "bin/vmm-daemon"), ["--version"])).toMatch(
      /^vmm-daemon \d+\.\d+\.\d+\n$/,
    );
    // The daemon runs with its Node options (package.json vmm.nodeArgs), the CLI without.
    const daemonArgs: string[] = JSON.parse(
      readFileSync(join(repo, "packages/vmm-daemon/package.json"), "utf8"),
    ).vmm.nodeArgs;
    expect(daemonArgs.length).toBeGreaterThan(0);
    const wrapper = readFileSync(join(prefix, "bin/vmm-daemon"), "utf8");
    for (const a of daemonArgs) expect(wrapper).toContain(`/bin/node" ${a} `);
    expect(readFileSync(join(prefix, "bin/vmm"), "utf8")).not.toContain(daemonArgs[0]);
    // Through a symlink elsewhere (ln -s /usr/local/bin/vmm ~/bin/vmm) too.
    symlinkSync(join(prefix, "bin/vmm"), join(dir, "vmm-link"));
    expect(
      execFileSync(join(dir, "vmm-link"), ["--version"], { cwd: "/", encoding: "utf8" }),
    ).toMatch(/^vmm /);
    // Its own Node runtime and what the daemon finds relative to its bundle (fc-sim).
    expect(runInstalled(join(prefix, "lib/vmm/bin/node"), ["--version"])).toBe(
      `${process.version}\n`,
    );
    expect(existsSync(join(prefix, "lib/vmm/packages/fc-sim/dist/fc-sim.mjs"))).toBe(true);
    // The web console's assets, beside the daemon bundle where the console mount looks.
    expect(existsSync(join(prefix, "lib/vmm/packages/vmm-daemon/dist/console/index.html"))).toBe(
      true,
    );
  });

  it("installs the systemd unit: config path, restart, KillMode=process, capabilities, /run/vmm", () => {
    const unit = readFileSync(join(prefix, "lib/systemd/system/vmm-daemon.service"), "utf8");
    const directive = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(unit)?.[1];
    expect(directive("ExecStart")).toBe(`${prefix}/bin/vmm-daemon --config ${etc}/vmm/config.toml`);
    expect(directive("Restart")).toBe("on-failure");
    expect(directive("KillMode")).toBe("process");
    expect(directive("RuntimeDirectory")).toBe("vmm");
    expect(directive("StateDirectory")).toBe("vmm");
    expect(Number(directive("LimitNOFILE"))).toBeGreaterThan(2 * 2 * 1024);
    const caps = directive("CapabilityBoundingSet")?.split(" ") ?? [];
    for (const cap of [
      "CAP_NET_ADMIN",
      "CAP_SYS_ADMIN",
      "CAP_SYS_CHROOT",
      "CAP_SETUID",
      "CAP_SETGID",
      "CAP_MKNOD",
      "CAP_KILL",
    ])
      expect(caps).toContain(cap);
    // Every capability in the set is explained in the unit.
    for (const cap of caps) expect(unit).toMatch(new RegExp(`^#\\s+${cap}\\s`, "m"));
    // No option that gives the service a private mount namespace (netns mounts, jails).
    expect(unit).not.toMatch(/^(ProtectSystem|PrivateTmp|ProtectHome|PrivateDevices)=/m);
  });

  it.skipIf(!has("systemd-analyze"))(
    `systemd-analyze verify accepts the unit${has("systemd-analyze") ? "" : " (skipped: systemd-analyze is not installed)"}`,
    () => {
      const unitPath = join(prefix, "lib/systemd/system/vmm-daemon.service");
      const ok = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8" });
      expect(ok.stderr).toBe("");
      expect(ok.status).toBe(0);
      // It does check here: a broken copy is refused.
      const broken = join(dir, "vmm-daemon.service");
      writeFileSync(
        broken,
        readFileSync(unitPath, "utf8").replace(
          /^ExecStart=\S+/m,
          "ExecStart=/nonexistent/vmm-daemon",
        ),
      );
      expect(spawnSync("systemd-analyze", ["verify", broken]).status).not.toBe(0);
    },
  );

  it("writes a valid example config whose socket lives in the unit's RuntimeDirectory, and keeps it on reinstall", () => {
    const config = join(etc, "vmm/config.toml");
    const text = readFileSync(config, "utf8");
    expect(text).toMatch(/^unix_socket = "\/run\/vmm\/vmm\.sock"$/m);
    expect(text).toMatch(/^data_dir = "\/var\/lib\/vmm"$/m);
    expect(text).toMatch(/^on_shutdown = "keep"$/m);
    const checked = runInstalled(join(prefix, "bin/vmm-daemon"), [
      "--check-config",
      "--config",
      config,
    ]);
    expect(checked).toMatch(/^\[firecracker\.jailer\]\nenabled = true {2}# file$/m);
    // Idempotent: a second install (an upgrade) replaces the program, never the config.
    writeFileSync(config, `${text}# edited by the operator\n`);
    const bundle = join(prefix, "lib/vmm/packages/vmm-daemon/dist/vmm-daemon.mjs");
    const before = statSync(bundle).size;
    expect(install("--prefix", prefix, "--sysconfdir", etc)).toMatch(/kept the existing/);
    expect(readFileSync(config, "utf8")).toMatch(/# edited by the operator\n$/);
    expect(statSync(bundle).size).toBe(before);
    expect(runInstalled(join(prefix, "bin/vmm"), ["--version"])).toMatch(/^vmm /);
  }, 120_000);

  it("installs bash, zsh and fish completion generated from the command table", () => {
    const bash = join(prefix, "share/bash-completion/completions/vmm");
    const zsh = join(prefix, "share/zsh/site-functions/_vmm");
    const fish = join(prefix, "share/fish/vendor_completions.d/vmm.fish");
    execFileSync("bash", ["-n", bash]);
    for (const file of [bash, zsh, fish]) {
      const script = readFileSync(file, "utf8");
      for (const c of commands)
        for (const n of c.names) expect(script, file).toContain(n.split(" ").at(-1));
    }
    // Loaded the way bash-completion loads it, it completes a subcommand.
    const out = execFileSync(
      "bash",
      [
        "-c",
        `source ${bash}; COMP_WORDS=(vmm snapshot re); COMP_CWORD=2; _vmm; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { encoding: "utf8" },
    );
    expect(out.trim()).toBe("restore");
  });

  it.skipIf(!has("zsh"))(
    `zsh -n accepts _vmm${has("zsh") ? "" : " (skipped: zsh is not installed)"}`,
    () => {
      execFileSync("zsh", ["-n", join(prefix, "share/zsh/site-functions/_vmm")]);
    },
  );
  it.skipIf(!has("fish"))(
    `fish -n accepts vmm.fish${has("fish") ? "" : " (skipped: fish is not installed)"}`,
    () => {
      execFileSync("fish", ["-n", join(prefix, "share/fish/vendor_completions.d/vmm.fish")]);
    },
  );

  it("--uninstall removes the program and keeps the config", () => {
    install("--prefix", prefix, "--sysconfdir", etc, "--uninstall");
    for (const p of [
      "bin/vmm",
      "bin/vmm-daemon",
      "lib/vmm",
      "lib/systemd/system/vmm-daemon.service",
      "share/bash-completion/completions/vmm",
    ])
      expect(existsSync(join(prefix, p)), p).toBe(false);
    expect(existsSync(join(etc, "vmm/config.toml"))).toBe(true);
  });
});

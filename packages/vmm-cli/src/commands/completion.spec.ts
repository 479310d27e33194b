import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { completionScript } from "./completion.js";
import { commands } from "./index.js";

function has(bin: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("completion scripts", () => {
  it("bash: passes bash -n and completes commands, subcommands and flag values", () => {
    const script = completionScript("bash", commands);
    execFileSync("bash", ["-n"], { input: script });
    // Drive the completion function the way bash does.
    const complete = (line: string) =>
      execFileSync(
        "bash",
        [
          "-c",
          `${script}\nvmm() { [[ "$*" == "image list -q" ]] && echo FAKE_IMAGE_LS_CALLED; }\nCOMP_WORDS=(${line}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _vmm; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        {
          encoding: "utf8",
        },
      );
    expect(complete(`vmm sn`).trim()).toBe("snapshot");
    expect(complete(`vmm snapshot re`).trim()).toBe("restore");
    expect(complete(`vmm im`).trim()).toBe("image");
    expect(complete(`vmm image p`).trim()).toBe("pull");
    expect(complete(`vmm image r`).trim().split("\n")).toEqual(["remove", "rm"]);
    expect(complete(`vmm image pull --`).split("\n")).toContain("--socket");
    // The reference of `image rm` is asked from the daemon: a stub vmm on PATH answers here.
    expect(complete(`vmm image rm ''`)).toContain("FAKE_IMAGE_LS_CALLED");
    expect(complete(`vmm list --state r`).split("\n")).toEqual(["ready", "running", ""]);
    expect(complete(`vmm create --net`).trim()).toBe("--network");
    expect(complete(`vmm completion ''`).trim().split("\n")).toEqual(["bash", "zsh", "fish"]);
  });
  it.skipIf(!has("zsh"))("zsh: passes zsh -n", () => {
    execFileSync("zsh", ["-n"], { input: completionScript("zsh", commands) });
  });
  it.skipIf(!has("fish"))("fish: passes fish -n", () => {
    execFileSync("fish", ["-n"], { input: completionScript("fish", commands) });
  });
  it("zsh and fish scripts name every command", () => {
    for (const shell of ["zsh", "fish"] as const) {
      const s = completionScript(shell, commands);
      for (const c of commands) for (const n of c.names) expect(s).toContain(n.split(" ").at(-1));
    }
  });
});

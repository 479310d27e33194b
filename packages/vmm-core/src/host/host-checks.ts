import { execFile } from "node:child_process";
import { readFile, statfs } from "node:fs/promises";
import { promisify } from "node:util";
import { generateId, ID_MAX_LENGTH } from "../internal/ids.js";
import { missingGuestKernelOptions, readKernelConfig } from "../storage/kernel-config.js";
import { probeReflink } from "../storage/probe-reflink.js";
import { findInitProgram } from "../storage/rootfs-init.js";
import {
  longestSocketPathBytes,
  MAX_SOCKET_PATH_BYTES,
  maxSandboxIdLength,
} from "../storage/sandbox-dir.js";
import { existingAncestor } from "./existing-ancestor.js";
import { checkJailer, type JailerCheckInputs } from "./jailer-check.js";
import { probeKvm } from "./kvm-probe.js";

const run = promisify(execFile);

/** One finding of the host check: `fail` means sandboxes cannot work as configured. */
export interface HostCheck {
  readonly name: string;
  readonly status: "ok" | "warn" | "fail";
  readonly detail: string;
  /** One line saying what to do, on warn and fail. */
  readonly fix?: string;
}

/** What the daemon is configured to use; every path as the daemon resolves it. */
export interface HostCheckInputs {
  /** The Firecracker binary (`firecracker.binary` resolved); `simulated` when it is fc-sim. */
  readonly firecracker:
    | { readonly path: string; readonly simulated: boolean }
    | { readonly error: string };
  /** `[firecracker.jailer]`, when the jailer is enabled. */
  readonly jailer?: JailerCheckInputs;
  /** The default kernel and rootfs images, resolved; undefined when they do not resolve (`error`). */
  readonly kernel: { readonly path?: string; readonly error?: string };
  readonly rootfs: { readonly path?: string; readonly error?: string };
  /** The program the guest runs as init (`init=` of the boot args, else /sbin/init). */
  readonly init: string;
  /** `firecracker.data_dir` (it need not exist yet: then the nearest existing parent is checked). */
  readonly dataDir: string;
  readonly network: "tap" | "none";
  /** The /dev/kvm to probe (tests point it elsewhere). */
  readonly kvmDevice?: string;
}

/** The Firecracker release whose API this daemon speaks (packages/firecracker's spec). */
const FIRECRACKER_API = "1.14";
const KERNEL_FIX = "build one with `bash guest/kernel/build.sh` and set defaults.kernel to it";

/**
 * Checks what sandboxes need from this host, each with a one-line fix: KVM, Firecracker (and the
 * jailer), the default kernel's options and rootfs's init, nftables and iproute2, userfaultfd,
 * cgroup v2, reflinks and space in data_dir, the socket path length. Never throws: a check that
 * cannot run is itself a finding.
 */
export async function runHostChecks(inputs: HostCheckInputs): Promise<HostCheck[]> {
  const dir = await existingAncestor(inputs.dataDir);
  const checks: Array<[string, () => Promise<Omit<HostCheck, "name">>]> = [
    ["kvm", () => kvm(inputs)],
    ["firecracker", () => firecracker(inputs)],
    ["jailer", () => jailer(inputs)],
    ["kernel", () => kernel(inputs)],
    ["rootfs", () => rootfs(inputs)],
    ["network tools", () => networkTools(inputs.network)],
    ["userfaultfd", userfaultfd],
    ["cgroup v2", cgroupV2],
    ["data_dir reflink", () => reflink(dir, inputs.dataDir)],
    ["data_dir space", () => space(dir, inputs.dataDir)],
    ["socket paths", async () => socketPaths(inputs)],
  ];
  return Promise.all(
    checks.map(async ([name, check]) => {
      try {
        return { name, ...(await check()) };
      } catch (err) {
        return {
          name,
          status: "fail" as const,
          detail: `the check itself failed: ${String(err)}`,
          fix: "fix what the error names (a missing tool or path), then check again",
        };
      }
    }),
  );
}

type Finding = Omit<HostCheck, "name">;

const simulated = (inputs: HostCheckInputs) =>
  "simulated" in inputs.firecracker && inputs.firecracker.simulated;

/** How a finding names data_dir: itself, or the parent checked in its place. */
const where = (dir: string, dataDir: string) =>
  dir === dataDir ? dataDir : `${dataDir} (not created yet; checked ${dir})`;

async function kvm(inputs: HostCheckInputs): Promise<Finding> {
  const device = inputs.kvmDevice ?? "/dev/kvm";
  const probe = await probeKvm(device);
  if (probe.usable) {
    return {
      status: "ok",
      detail: `${device}: API version ${probe.apiVersion}, a VM can be created`,
    };
  }
  // With fc-sim nothing needs KVM: say so, but do not fail the host.
  const status = simulated(inputs) ? "warn" : "fail";
  const fixes: Record<typeof probe.step, string> = {
    open: "load kvm_intel or kvm_amd (on a cloud VM: an instance type with nested virtualization), and give the daemon's user rw on /dev/kvm (group kvm)",
    "api-version": `${device} is not a KVM device: check what is mounted there`,
    "create-vm":
      "KVM refuses VMs: another hypervisor holds VT-x/AMD-V, or nested virtualization is off",
    probe: "install perl (Debian perl-base) so the check can issue the KVM ioctls",
  };
  return {
    status,
    detail: `${device}: ${probe.step} failed: ${probe.error}${simulated(inputs) ? " (fc-sim in use: no VM needs it)" : ""}`,
    fix: fixes[probe.step],
  };
}

async function firecracker(inputs: HostCheckInputs): Promise<Finding> {
  if ("error" in inputs.firecracker) {
    return {
      status: "fail",
      detail: inputs.firecracker.error,
      fix: `install Firecracker v${FIRECRACKER_API}.x and set firecracker.binary to it`,
    };
  }
  const { path } = inputs.firecracker;
  const version = await versionOf(path);
  if (simulated(inputs)) {
    return {
      status: "warn",
      detail: `${path} is fc-sim ${version}, the simulator: guests are host processes, not VMs`,
      fix: `install Firecracker v${FIRECRACKER_API}.x and set firecracker.binary to it`,
    };
  }
  if (!version.startsWith(`${FIRECRACKER_API}.`)) {
    return {
      status: "warn",
      detail: `${path} is Firecracker ${version}; this daemon speaks the v${FIRECRACKER_API} API`,
      fix: `install Firecracker v${FIRECRACKER_API}.x (github.com/firecracker-microvm/firecracker/releases)`,
    };
  }
  return { status: "ok", detail: `${path}: Firecracker ${version}` };
}

async function jailer(inputs: HostCheckInputs): Promise<Finding> {
  const fc = inputs.firecracker;
  const sim = simulated(inputs);
  return checkJailer({
    jailer: inputs.jailer,
    firecrackerVersion:
      "path" in fc && !sim ? await versionOf(fc.path).catch(() => undefined) : undefined,
    simulated: sim,
    dataDir: inputs.dataDir,
    kernelPath: inputs.kernel.path,
  });
}

async function versionOf(path: string): Promise<string> {
  const { stdout } = await run(path, ["--version"], { timeout: 10_000 });
  return /v?(\d+\.\d+\.\d+\S*)/.exec(stdout)?.[1] ?? stdout.split("\n")[0]?.trim() ?? "?";
}

async function kernel(inputs: HostCheckInputs): Promise<Finding> {
  const { path, error } = inputs.kernel;
  if (!path) return { status: "fail", detail: `defaults.kernel: ${error}`, fix: KERNEL_FIX };
  const config = await readKernelConfig(path);
  if (!config) {
    return {
      status: "warn",
      detail: `${path}: no embedded config (CONFIG_IKCONFIG), so its drivers cannot be checked before a boot`,
      fix: KERNEL_FIX,
    };
  }
  const missing = missingGuestKernelOptions(config);
  if (missing.length > 0) {
    return {
      status: "fail",
      detail: `${path}: not built in: ${missing.join("; ")}`,
      fix: KERNEL_FIX,
    };
  }
  return { status: "ok", detail: `${path}: every driver the guest needs is built in` };
}

async function rootfs(inputs: HostCheckInputs): Promise<Finding> {
  const { path, error } = inputs.rootfs;
  const fix = "build it with `bash guest/rootfs/build-rootfs.sh` (the agent is its /sbin/init)";
  if (!path) return { status: "fail", detail: `defaults.rootfs: ${error}`, fix };
  const init = await findInitProgram(path, inputs.init);
  if (!init) {
    return {
      status: "warn",
      detail: `${path}: not an ext image debugfs can read; init not checked`,
      fix,
    };
  }
  if (!init.ok) return { status: "fail", detail: `${path}: ${init.why}`, fix };
  return { status: "ok", detail: `${path}: ${inputs.init} is ${init.path}` };
}

async function networkTools(mode: "tap" | "none"): Promise<Finding> {
  const versions = await Promise.all(
    [
      ["nft", ["--version"]],
      ["ip", ["-V"]],
    ].map(([cmd, args]) =>
      run(cmd as string, args as string[], { timeout: 10_000 }).then(
        ({ stdout }) => `${stdout.trim().split("\n")[0]}`,
        () => undefined,
      ),
    ),
  );
  const absent = ["nft (nftables)", "ip (iproute2)"].filter((_, i) => versions[i] === undefined);
  if (absent.length > 0) {
    return {
      status: mode === "tap" ? "fail" : "warn",
      detail: `missing: ${absent.join(", ")} (network mode ${mode})`,
      fix: "apt-get install nftables iproute2",
    };
  }
  return { status: "ok", detail: versions.join("; ") };
}

async function userfaultfd(): Promise<Finding> {
  // userfaultfd(2) is syscall 323 on x86_64; perl can make the call (Node cannot).
  const { stdout } = await run(
    "perl",
    ["-e", 'my $fd = syscall(323, 0); print $fd >= 0 ? "ok\\n" : "err $!\\n"'],
    { timeout: 10_000 },
  ).catch((err: unknown) => ({ stdout: `err perl: ${String(err)}` }));
  if (stdout.startsWith("ok")) {
    return {
      status: "ok",
      detail:
        "userfaultfd(2) works for this user (for UFFD page-server restores; restores are File-backed today)",
    };
  }
  return {
    status: "warn",
    detail: `userfaultfd(2) refused: ${stdout.replace(/^err /, "").trim()}; nothing needs it yet (restores are File-backed), a UFFD page server will`,
    fix: "run the daemon as root or set vm.unprivileged_userfaultfd=1",
  };
}

async function cgroupV2(): Promise<Finding> {
  const controllers = await readFile("/sys/fs/cgroup/cgroup.controllers", "utf8").catch(
    () => undefined,
  );
  if (controllers === undefined) {
    return {
      status: "warn",
      detail: "/sys/fs/cgroup is not a cgroup v2 mount (the jailer's cgroup_version = 2 needs it)",
      fix: "boot with systemd.unified_cgroup_hierarchy=1, or set firecracker.jailer.cgroup_version = 1",
    };
  }
  return { status: "ok", detail: `controllers: ${controllers.trim() || "(none delegated)"}` };
}

async function reflink(dir: string, dataDir: string): Promise<Finding> {
  const probe = await probeReflink(dir);
  const name = `${where(dir, dataDir)} (${probe.filesystem})`;
  if (probe.supported) return { status: "ok", detail: `${name} can reflink: disks clone in O(1)` };
  return {
    status: "warn",
    detail: `${name} cannot reflink (${probe.reason}): every sandbox disk is a full copy`,
    fix: "put data_dir on XFS (mkfs.xfs -m reflink=1) or btrfs",
  };
}

async function space(dir: string, dataDir: string): Promise<Finding> {
  const s = await statfs(dir);
  const free = s.bavail * s.bsize;
  const gib = (free / 2 ** 30).toFixed(1);
  if (free < 2 ** 30) {
    return {
      status: "warn",
      detail: `${where(dir, dataDir)}: ${gib} GiB free`,
      fix: "free space or move data_dir",
    };
  }
  return { status: "ok", detail: `${where(dir, dataDir)}: ${gib} GiB free` };
}

function socketPaths(inputs: HostCheckInputs): Finding {
  // Sandbox directories (and their sockets) live under data_dir, so its length caps the id length.
  const fit = maxSandboxIdLength(inputs.dataDir);
  const generated = generateId("sb").length;
  const over = longestSocketPathBytes(inputs.dataDir, ID_MAX_LENGTH) - MAX_SOCKET_PATH_BYTES;
  if (fit < generated) {
    return {
      status: "fail",
      detail: `even generated ${generated}-char sandbox ids make socket paths over the ${MAX_SOCKET_PATH_BYTES}-byte limit`,
      fix: `shorten data_dir by ${over - (ID_MAX_LENGTH - generated)} bytes or more`,
    };
  }
  if (fit < ID_MAX_LENGTH) {
    return {
      status: "warn",
      detail: `sandbox ids longer than ${fit} chars (of ${ID_MAX_LENGTH} allowed) would make socket paths over the ${MAX_SOCKET_PATH_BYTES}-byte limit: Create refuses them`,
      fix: `shorten data_dir by ${over} bytes to allow every id`,
    };
  }
  return {
    status: "ok",
    detail: `sandbox ids up to ${ID_MAX_LENGTH} chars fit the ${MAX_SOCKET_PATH_BYTES}-byte socket path limit`,
  };
}

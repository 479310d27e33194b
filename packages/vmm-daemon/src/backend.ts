import { execFile } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  createDiskCloner,
  createDryRunCommandRunner,
  createNetworkManager,
  type ImagePullPolicy,
  ImageStore,
  openSpareCloner,
  prepareDataDir,
  SandboxManager,
  SnapshotCatalog,
} from "@vmm/core";
import {
  createDirectLauncher,
  createJailerLauncher,
  type FirecrackerLauncher,
  MINIMAL_FIRECRACKER_ENV,
} from "@vmm/firecracker";
import type { FilesApi, ImageApi, SandboxApi, SnapshotApi } from "@vmm/grpc";
import type { Logger } from "pino";
import { ConfigError } from "./config/load-config.js";
import type { Config } from "./config/schema.js";
import type { MetricsSource } from "./http/metrics-source.js";
import { imageRootsFromConfig } from "./image-roots.js";
import { imageStoreOptionsFromConfig } from "./images-config.js";
import { portsFromConfig } from "./ports-config.js";
import type { ProxyBackend } from "./proxy/http-proxy.js";
import { imageApiWithRootfs, sandboxImagesFromConfig } from "./sandbox-images.js";

/** The sandbox backend the API serves, and how to release it. */
export interface Backend {
  readonly sandboxes: SandboxApi;
  readonly snapshots?: SnapshotApi;
  /** File calls; absent without a sandbox backend (UNIMPLEMENTED). */
  readonly files?: FilesApi;
  /** What /metrics reads about sandboxes and pools. */
  readonly metricsSource?: MetricsSource;
  /** What the HTTP proxy (`[proxy]`) reaches exposed ports through. */
  readonly proxyBackend?: ProxyBackend;
  /** The OCI image store (ImageService). */
  readonly images?: ImageApi;
  close(): Promise<void>;
}

const execFileAsync = promisify(execFile);
const FC_SIM = fileURLToPath(new URL("../../fc-sim/dist/fc-sim.mjs", import.meta.url));

/** Which Firecracker the daemon runs, and whether it is the simulator. */
export interface FirecrackerChoice {
  readonly path: string;
  readonly simulated: boolean;
  readonly reason: string;
}

/**
 * Resolves `firecracker.binary`: a path or PATH name must exist (a production
 * config never falls back silently); "auto" uses a real firecracker from PATH
 * when /dev/kvm is usable, otherwise fc-sim.
 */
export function chooseFirecracker(binary: string): FirecrackerChoice {
  if (binary === "auto") {
    const real = findOnPath("firecracker");
    if (real && kvmUsable())
      return { path: real, simulated: false, reason: "firecracker on PATH and /dev/kvm usable" };
    if (!existsSync(FC_SIM)) {
      throw new ConfigError(
        `firecracker.binary = "auto" found no usable firecracker and fc-sim is not built (${FC_SIM}); run node scripts/build.mjs`,
      );
    }
    return {
      path: FC_SIM,
      simulated: true,
      reason: real ? "/dev/kvm is not usable" : "no firecracker on PATH",
    };
  }
  const path = isAbsolute(binary)
    ? binary
    : binary.includes("/")
      ? resolve(binary)
      : findOnPath(binary);
  if (!path || !existsSync(path)) {
    throw new ConfigError(
      `firecracker.binary ${JSON.stringify(binary)} not found. Install Firecracker v1.14.x (download the release tarball from github.com/firecracker-microvm/firecracker/releases, put firecracker-v1.14.x-x86_64 on PATH as firecracker) or set firecracker.binary to its path`,
    );
  }
  return { path, simulated: /fc-sim/.test(path), reason: "configured" };
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

function kvmUsable(): boolean {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The environment Firecracker (or the jailer) starts with: {@link MINIMAL_FIRECRACKER_ENV}, nothing
 * of the daemon's. fc-sim additionally needs node on PATH (it is a node script) and its own
 * `FC_SIM_*` settings (development only).
 */
export function firecrackerEnv(
  simulated: boolean,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  if (!simulated) return { ...MINIMAL_FIRECRACKER_ENV };
  const out: Record<string, string> = {
    ...MINIMAL_FIRECRACKER_ENV,
    PATH: `${dirname(process.execPath)}${delimiter}${MINIMAL_FIRECRACKER_ENV.PATH}`,
  };
  for (const [k, v] of Object.entries(env))
    if (k.startsWith("FC_SIM_") && v !== undefined) out[k] = v;
  return out;
}

/** True when this process has CAP_NET_ADMIN (bit 12 of CapEff). */
export function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n : false;
  } catch {
    return false;
  }
}

function networkOptions(config: Config, logger: Logger | undefined) {
  const n = config.network;
  return {
    mode: n.mode as "tap" | "none",
    hostCidr: n.host_cidr,
    poolSize: n.pool_size,
    namePrefix: n.netns_prefix,
    ...(n.uplink !== "" && { uplink: n.uplink }),
    ...(n.host_netns !== "" && { hostNetns: n.host_netns }),
    guestDnsServers: n.dns.slice(0, 2),
    ...(config["firecracker.jailer"].enabled && { tapOwnerUid: config["firecracker.jailer"].uid }),
    ...(logger && { logger: logger.child({ component: "network" }) }),
  };
}

/** Builds the backend from the configuration and recovers what an earlier daemon left. */
export async function createBackend(config: Config, logger: Logger): Promise<Backend> {
  const fc = chooseFirecracker(config.firecracker.binary);
  const images = imageRootsFromConfig(config);
  // Owner-only data_dir; the umask also covers files children (Firecracker) create there.
  process.umask(0o077);
  const dataDir = await prepareDataDir(config.firecracker.data_dir);
  if (dataDir.tightened.length > 0) {
    logger.warn(
      { dataDir: config.firecracker.data_dir, tightened: dataDir.tightened.length },
      "removed group/other permissions under data_dir (everything there is owner-only)",
    );
  }
  const warnSimulated = () =>
    logger.warn(
      { firecracker: fc.path, reason: fc.reason },
      "SIMULATED sandboxes: fc-sim runs guests as host processes with NO ISOLATION; never run untrusted code like this",
    );
  if (fc.simulated) warnSimulated();

  let mode = config.network.mode as "tap" | "none";
  if (mode === "tap" && !hasNetAdmin()) {
    logger.warn(
      "network.mode = tap needs CAP_NET_ADMIN, which the daemon lacks: using network mode none",
    );
    mode = "none";
  }
  const network = createNetworkManager({ ...networkOptions(config, logger), mode });

  const j = config["firecracker.jailer"];
  const launcher: FirecrackerLauncher = j.enabled
    ? createJailerLauncher({
        jailerPath: chooseJailer(j.binary),
        uid: j.uid,
        gid: j.gid,
        chrootBaseDir: j.chroot_base_dir,
        cgroupVersion: j.cgroup_version as 1 | 2,
        parentCgroup: j.parent_cgroup,
        newPidNs: j.new_pid_ns,
      })
    : createDirectLauncher();
  const f = config.firecracker;
  // Opened in the background (the version check runs the binary): startup does not wait.
  const catalog = firecrackerVersion(fc.path).then((version) =>
    SnapshotCatalog.open({
      dataDir: f.data_dir,
      firecrackerVersion: version,
      logger: logger.child({ component: "snapshots" }),
    }),
  );
  catalog.then(
    (c) => {
      if (c.openReport.removedLeftovers.length > 0) {
        logger.info({ removed: c.openReport.removedLeftovers }, "removed incomplete snapshots");
      }
      for (const u of c.openReport.unusable)
        logger.warn({ snapshot: u.id, reason: u.reason }, "unusable snapshot");
    },
    (err: unknown) =>
      logger.error({ err }, "the snapshot catalog could not be opened: snapshot calls will fail"),
  );
  const cloner = await openSpareCloner({
    inner: createDiskCloner(config.storage.rootfs_clone as "auto"),
    dir: join(f.data_dir, "spares"),
    maxSpares: config.storage.spare_clones,
    onError: (err, src) => logger.warn({ err, image: src }, "making a spare rootfs clone failed"),
  });
  // RemoveImage refuses while a sandbox or snapshot uses the image: the manager answers, once built.
  let imageUser: (manifestDigest: string) => string | undefined = () => undefined;
  const imageStore = await ImageStore.open({
    ...imageStoreOptionsFromConfig(config),
    logger: logger.child({ component: "images" }),
    isInUse: (digest) => imageUser(digest),
  });
  const ociImages = sandboxImagesFromConfig({
    source: imageStore,
    dataDir: f.data_dir,
    imagesDir: images.imagesDir,
    defaultRootfs: config.defaults.rootfs,
    pull: config.images.pull as ImagePullPolicy,
    logger: logger.child({ component: "images" }),
  });
  const manager = new SandboxManager({
    images: ociImages,
    catalog,
    ...(config.golden.enabled && {
      golden: {
        maxSnapshots: config.golden.max_snapshots,
        maxConcurrentBuilds: config.golden.max_concurrent_builds,
      },
    }),
    exposeHostDetails: config.grpc.expose_host_details,
    ports: portsFromConfig(config),
    lifecycle: {
      autoPauseSeconds: config.lifecycle.auto_pause_seconds,
      autoResume: config.lifecycle.auto_resume,
    },
    dataDir: f.data_dir,
    imagesDir: images.imagesDir,
    allowedImageRoots: images.allowedRoots,
    runtime: {
      launcher,
      apiTimeoutMs: f.api_timeout_ms,
      ...(j.enabled && { jailOwner: { uid: j.uid, gid: j.gid } }),
      launchDefaults: {
        binaryPath: fc.path,
        env: firecrackerEnv(fc.simulated),
        logLevel: f.log_level as "Warning",
        seccomp: f.no_seccomp
          ? { mode: "off" }
          : f.seccomp_filter !== ""
            ? { mode: "filter", path: f.seccomp_filter }
            : { mode: "default" },
        httpApiMaxPayloadSizeBytes: f.http_api_max_payload_size,
        ...(f.mmds_size_limit > 0 && { mmdsSizeLimitBytes: f.mmds_size_limit }),
        startTimeoutMs: f.start_timeout_ms,
      },
    },
    network,
    cloner,
    defaults: {
      vcpus: config.defaults.vcpus,
      memoryMib: config.defaults.memory_mib,
      kernel: config.defaults.kernel,
      rootfs: config.defaults.rootfs,
      bootArgs: config.defaults.boot_args,
      network: mode,
    },
    limits: {
      maxSandboxes: config.limits.max_sandboxes,
      maxVcpusPerSandbox: config.limits.max_vcpus_per_sandbox,
      maxMemoryMibPerSandbox: config.limits.max_memory_mib_per_sandbox,
      maxTotalVcpus: config.limits.max_total_vcpus,
      maxTotalMemoryMib: config.limits.max_total_memory_mib,
      maxConcurrentCreates: config.limits.max_concurrent_creates,
      maxTotalDiskBytes: config.limits.max_total_disk_gib * 2 ** 30,
      maxSnapshotsPerSandbox: config.limits.max_snapshots_per_sandbox,
    },
    agent: {
      port: config.agent.port,
      readiness: config.agent.readiness as "agent" | "vmm",
      bootTimeoutMs: config.agent.boot_timeout_ms,
      callTimeoutMs: config.agent.call_timeout_ms,
    },
    logger: logger.child({ component: "sandboxes" }),
    ...(fc.simulated && { onCreate: warnSimulated }),
  });
  imageUser = (digest) => manager.isImageInUse(digest);
  const imageApi = imageApiWithRootfs(imageStore, ociImages.builder);
  // Re-adopts what an earlier daemon left running, and starts the network manager.
  await manager.recover();
  // Built in the background: Create never waits for it.
  manager.warmGolden();
  const snapshots: SnapshotApi = {
    checkpoint: (req) => manager.checkpoint(req),
    restore: (req) => manager.restore(req),
    list: (filter) => manager.listSnapshots(filter),
    delete: (id) => manager.deleteSnapshot(id),
  };
  return {
    sandboxes: manager,
    snapshots,
    files: manager.files,
    metricsSource: {
      sandboxes: () => manager.usage(),
      pools: () => ({
        network: network.levels(),
        spareClones: cloner.spareCount(),
        goldenSnapshots: manager.goldenSnapshotCount(),
      }),
      observeCreates: (observer) => manager.observeCreates(observer),
    },
    proxyBackend: manager,
    images: imageApi,
    async close() {
      await manager.close({ stopSandboxes: config.daemon.on_shutdown === "stop" });
      await catalog.then((c) => c.close()).catch(() => {});
      await cloner.close();
      if (config.daemon.on_shutdown === "stop") await network.close();
    },
  };
}

/** The version `<binary> --version` reports, e.g. "1.14.2" (snapshots are not portable across versions). */
async function firecrackerVersion(binary: string): Promise<string> {
  const { stdout: out } = await execFileAsync(binary, ["--version"], {
    encoding: "utf8",
    env: firecrackerEnv(/fc-sim/.test(binary)),
    timeout: 10_000,
  });
  const m = /Firecracker v(\d+\.\d+\.\d+)/.exec(out);
  if (!m)
    throw new ConfigError(
      `${binary} --version printed ${JSON.stringify(out.split("\n")[0])}, not a Firecracker version`,
    );
  return m[1]!;
}

/** Resolves `firecracker.jailer.binary` (a path or PATH name). @throws ConfigError when absent */
export function chooseJailer(binary: string): string {
  const path = isAbsolute(binary) ? binary : findOnPath(binary);
  if (!path || !existsSync(path))
    throw new ConfigError(
      `firecracker.jailer.binary ${JSON.stringify(binary)} not found; install the jailer of the same Firecracker release`,
    );
  return path;
}

/** The network commands startup would run, for `--check-config --dry-run`. */
export async function describeStartup(config: Config): Promise<string> {
  if (config.network.mode !== "tap") return "# network.mode = none: no network commands\n";
  const runner = createDryRunCommandRunner({});
  const network = createNetworkManager({ ...networkOptions(config, undefined), runner });
  return `# network commands at startup (dry run):\n${network.describeCommands().join("\n")}\n`;
}

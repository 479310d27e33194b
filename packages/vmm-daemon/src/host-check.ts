import { dirname } from "node:path";
import { type HostCheck, type HostCheckInputs, resolveImage, runHostChecks } from "@vmm/core";
import { chooseFirecracker, chooseJailer } from "./backend.js";
import type { Config } from "./config/schema.js";
import { imageRootsFromConfig } from "./image-roots.js";

/** What `config` makes the daemon use, resolved as the daemon would (nothing is created). */
export async function hostCheckInputs(config: Config): Promise<HostCheckInputs> {
  const { imagesDir } = imageRootsFromConfig(config);
  const image = async (value: string, field: string) =>
    resolveImage(imagesDir, value, field, { trusted: true }).then(
      (r) => ({ path: r.path }),
      (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
    );
  const fc = (() => {
    try {
      const { path, simulated } = chooseFirecracker(config.firecracker.binary);
      return { path, simulated };
    } catch (err) {
      return { error: (err as Error).message };
    }
  })();
  const j = config["firecracker.jailer"];
  return {
    firecracker: fc,
    ...(j.enabled && {
      jailer: {
        binary: (() => {
          try {
            return { path: chooseJailer(j.binary) };
          } catch (err) {
            return { error: (err as Error).message };
          }
        })(),
        chrootBaseDir: j.chroot_base_dir,
        uid: j.uid,
        gid: j.gid,
      },
    }),
    kernel: await image(config.defaults.kernel, "defaults.kernel"),
    rootfs: await image(config.defaults.rootfs, "defaults.rootfs"),
    init: /(?:^|\s)init=(\S+)/.exec(config.defaults.boot_args)?.[1] ?? "/sbin/init",
    dataDir: config.firecracker.data_dir,
    network: config.network.mode as "tap" | "none",
  };
}

/**
 * Runs the host checks for `config`. With `redact`, host paths become placeholders
 * (`<data_dir>`, `<images_dir>`): what API clients see unless grpc.expose_host_details is on.
 */
export async function checkHost(
  config: Config,
  options: { redact?: boolean } = {},
): Promise<HostCheck[]> {
  const inputs = await hostCheckInputs(config);
  const checks = await runHostChecks(inputs);
  if (!options.redact) return checks;
  const { imagesDir } = imageRootsFromConfig(config);
  const swaps: Array<[string, string]> = [
    [imagesDir, "<images_dir>"],
    [config.firecracker.data_dir, "<data_dir>"],
    [config["firecracker.jailer"].chroot_base_dir, "<chroot_base_dir>"],
    ...("path" in inputs.firecracker
      ? [[dirname(inputs.firecracker.path), "<bin>"] as [string, string]]
      : []),
  ];
  const redact = (text: string) => swaps.reduce((t, [from, to]) => t.split(from).join(to), text);
  return checks.map((c) => ({
    ...c,
    detail: redact(c.detail),
    ...(c.fix !== undefined && { fix: redact(c.fix) }),
  }));
}

/** The checks as text, one line each (`ok`, `WARN`, `FAIL`) with its fix indented below. */
export function formatHostChecks(checks: readonly HostCheck[]): string {
  const lines = checks.flatMap((c) => [
    `${{ ok: "ok  ", warn: "WARN", fail: "FAIL" }[c.status]}  ${c.name}: ${c.detail}`,
    ...(c.fix && c.status !== "ok" ? [`      fix: ${c.fix}`] : []),
  ]);
  const failed = checks.filter((c) => c.status === "fail").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  lines.push(
    failed > 0
      ? `${failed} check(s) failed: sandboxes cannot run as configured on this host`
      : `no failures${warned > 0 ? ` (${warned} warning(s))` : ""}`,
  );
  return `${lines.join("\n")}\n`;
}

/** How long a CheckHost answer is reused: the checks spawn processes, clients may poll. */
const REUSE_MS = 5_000;

/**
 * CheckHost for the API: concurrent calls share one run, and an answer is reused for 5 s. Host
 * paths are redacted unless grpc.expose_host_details is on.
 */
export function createHostChecker(config: Config): () => Promise<readonly HostCheck[]> {
  let last: { at: number; checks: Promise<HostCheck[]> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > REUSE_MS) {
      const checks = checkHost(config, { redact: !config.grpc.expose_host_details });
      last = { at: now, checks };
      checks.catch(() => {
        if (last?.checks === checks) last = undefined;
      });
    }
    return last.checks;
  };
}

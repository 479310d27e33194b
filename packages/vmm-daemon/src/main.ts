import { parseArgs } from "node:util";
import { createBackend } from "./backend.js";
import { renderExampleConfig } from "./config/example-config.js";
import { ConfigError, loadConfig } from "./config/load-config.js";
import { printConfig } from "./config/print-config.js";
import { validateConfig } from "./config/validate-config.js";
import { createConsoleMount } from "./console/console-mount.js";
import { startDaemon } from "./daemon.js";
import { assertSocketFree } from "./listeners.js";
import { createRootLogger } from "./logger.js";
import { startConfiguredProxy } from "./proxy/start-proxy.js";
import { VERSION } from "./version.js";

const HELP = `vmm-daemon ${VERSION}: Firecracker microVM sandboxes over gRPC (sandbox.v1)

Usage: vmm-daemon [--config <file>] [options]

Options:
  -c, --config <file>   TOML configuration (see config.example.toml). Every key can
                        also be set by VMM_<SECTION>_<KEY>, e.g. VMM_GRPC_UNIX_SOCKET.
      --check-config    Validate the configuration, print every effective value and
                        where it came from, and exit (0 = valid, 2 = invalid).
      --dry-run         With --check-config: also print the network commands the
                        daemon would run at startup, without running them.
      --check-host      Check what sandboxes need from this host (KVM, Firecracker, the
                        default kernel and rootfs, nftables, cgroup v2, data_dir...),
                        each with a one-line fix, and exit (0 = no failure, 1 = a
                        check failed). With --json: the checks as JSON.
      --print-example-config
                        Print a configuration file with every key, its default and
                        its documentation, and exit.
      --version         Print the version and exit.
  -h, --help            Print this help and exit.

Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration or usage.`;

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`vmm-daemon: ${(err as Error).message}\n(see vmm-daemon --help)\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (args.values["print-example-config"]) {
    process.stdout.write(renderExampleConfig());
    return 0;
  }
  if (args.values.version) {
    process.stdout.write(`vmm-daemon ${VERSION}\n`);
    return 0;
  }
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig(args.values.config);
    validateConfig(loaded);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vmm-daemon: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (args.values["check-host"]) {
    const { checkHost, formatHostChecks } = await import("./host-check.js");
    const checks = await checkHost(loaded.config);
    process.stdout.write(
      args.values.json ? `${JSON.stringify({ checks }, null, 2)}\n` : formatHostChecks(checks),
    );
    return checks.some((c) => c.status === "fail") ? 1 : 0;
  }
  if (args.values["check-config"]) {
    process.stdout.write(printConfig(loaded));
    if (args.values["dry-run"]) {
      const { describeStartup } = await import("./backend.js");
      process.stdout.write(await describeStartup(loaded.config));
    }
    return 0;
  }

  const { config } = loaded;
  const logger = createRootLogger({
    level: config.daemon.log_level,
    format: config.daemon.log_format as "auto" | "json" | "pretty",
  });
  await assertSocketFree(config.grpc.unix_socket);
  let backend: Awaited<ReturnType<typeof createBackend>>;
  try {
    backend = await createBackend(config, logger);
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.fatal(err.message);
      process.stderr.write(`vmm-daemon: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const proxy = await startConfiguredProxy(config, backend.proxyBackend, logger).catch(
    async (err: unknown) => {
      await backend.close();
      throw err;
    },
  );
  const daemon = await startDaemon({
    config,
    logger,
    sandboxes: backend.sandboxes,
    ...(backend.snapshots && { snapshots: backend.snapshots }),
    ...(backend.files && { files: backend.files }),
    ...(backend.metricsSource && { metricsSource: backend.metricsSource }),
    ...(proxy && { exposedPortUrl: (id: string, port: number) => proxy.urlFor(id, port) }),
    ...(config.http.listen !== "" && {
      httpMounts: [createConsoleMount({ sandboxes: backend.sandboxes, logger })],
    }),
    ...(backend.images && { images: backend.images }),
  }).catch(async (err: unknown) => {
    await proxy?.close();
    await backend.close();
    throw err;
  });

  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "shutting down");
      void (async () => {
        await daemon.stop(config.grpc.shutdown_grace_ms);
        await proxy?.close();
        await backend.close();
        logger.info("stopped");
        resolve();
      })();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await stopped;
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      config: { type: "string", short: "c" },
      "check-config": { type: "boolean" },
      "dry-run": { type: "boolean" },
      "check-host": { type: "boolean" },
      json: { type: "boolean" },
      version: { type: "boolean" },
      "print-example-config": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
}

// `pnpm daemon -- <args>` passes the separator through.
const cliArgs = process.argv.slice(2);
if (cliArgs[0] === "--") cliArgs.shift();

main(cliArgs).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vmm-daemon: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

import { existsSync, readFileSync } from "node:fs";
import { createApiHandler } from "./api-router.js";
import { ArgsError, checkInstanceId, helpText, parseFcArgs } from "./cli-args.js";
import { bootFromConfigFile } from "./config-file.js";
import { FcLogger, parseLogLevel, simulatorBanner } from "./fc-logger.js";
import { Guest, sweepStaleGuestDirs } from "./guest.js";
import { Metrics } from "./metrics.js";
import { createMicroHttpServer } from "./micro-http.js";
import { osError } from "./os-error.js";
import { Vmm } from "./vmm.js";
import { describeVmstate, snapshotVersion } from "./vmstate-file.js";

/**
 * Runs fc-sim as the `firecracker` process: same flags, exit codes and API.
 * Never returns normally; the process ends through `process.exit` or a signal.
 */
export async function runSimulator(argv: readonly string[]): Promise<void> {
  const logger = new FcLogger();
  const exitWith = (code: number, error?: string): never => {
    if (error) process.stderr.write(`Error: ${error}\n`);
    logger.log(
      "Error",
      "main",
      code === 0
        ? "Firecracker exiting successfully. exit_code=0"
        : `Firecracker exiting with error. exit_code=${code}`,
    );
    process.exit(code);
  };
  let args: ReturnType<typeof parseFcArgs>;
  try {
    args = parseFcArgs(argv);
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    logger.log("Error", "main", `Arguments parsing error: ${e.message}`);
    return exitWith(153, "ParseArguments");
  }
  const idError = checkInstanceId(args.id);
  if (idError) {
    logger.log(
      "Error",
      "main",
      `Firecracker panicked at src/firecracker/src/main.rs:296:48:\n${idError}`,
    );
    process.abort(); // the real binary panics → SIGABRT
  }
  logger.instanceId = args.id;
  if (args.help) {
    process.stdout.write(helpText);
    return exitWith(0);
  }
  if (args.version) {
    process.stdout.write("Firecracker v1.14.2\n\n");
    logger.log("Info", "main", "(fc-sim: simulated Firecracker, not the real binary)");
    return exitWith(0);
  }
  if (args.snapshotVersion) {
    process.stdout.write(`v${snapshotVersion.join(".")}\n`);
    return exitWith(0);
  }
  if (args.describeSnapshot !== undefined) {
    try {
      process.stdout.write(`${describeVmstate(readFileSync(args.describeSnapshot))}\n`);
    } catch (e) {
      logger.log("Error", "main", `Unable to describe snapshot: ${(e as Error).message}`);
      return exitWith(1, "DescribeSnapshot");
    }
    return exitWith(0);
  }
  if (args.level !== undefined) {
    const l = parseLogLevel(args.level);
    if (!l) {
      logger.log(
        "Error",
        "main",
        `Invalid value for logger level: Failed to parse string to level filter: ${args.level}.Possible values: [Error, Warning, Info, Debug]`,
      );
      return exitWith(152, "InvalidLogLevel");
    }
    logger.level = l;
  }
  logger.showLevel = args.showLevel;
  logger.showOrigin = args.showLogOrigin;
  logger.module = args.module;
  if (args.logPath !== undefined) {
    try {
      logger.setPath(args.logPath);
    } catch (e) {
      logger.log("Error", "main", `Failed to initialize logger: ${osError(e)}`);
      return exitWith(1, "LoggerInitialization");
    }
  }
  for (const line of simulatorBanner) logger.log("Error", "main", line);
  logger.log("Info", "main", "Running Firecracker v1.14.2");

  const metrics = new Metrics();
  if (args.metricsPath !== undefined) {
    try {
      metrics.init(args.metricsPath);
    } catch (e) {
      logger.log("Error", "main", `Failed to initialize metrics: ${osError(e)}`);
      return exitWith(1, "MetricsInitialization");
    }
  }

  try {
    sweepStaleGuestDirs();
  } catch {
    // best effort
  }
  let exiting = false;
  const guest = new Guest({
    onExit: (code, signal) => {
      logger.log(
        "Info",
        "fc_vcpu 0",
        `Guest init exited (code ${code}, signal ${signal}): kernel panic, reboot=k`,
      );
      void shutdown(0);
    },
    onPlacement: (p) => {
      if (p.kind === "disk") {
        logger.log(
          "Info",
          "fc_vcpu 0",
          `fc-sim: the guest runs inside its root drive ${p.drive.path} (loop mount, own mount/PID/UTS namespaces)`,
        );
      } else {
        logger.log(
          "Warn",
          "fc_vcpu 0",
          `fc-sim: the guest runs as a host process on the host's filesystem, not inside its disk: ${p.reason}`,
        );
      }
    },
  });
  const shutdown = async (code: number, error?: string): Promise<void> => {
    if (exiting) return;
    exiting = true;
    await guest.stop();
    metrics.flush();
    exitWith(code, error);
  };
  process.on("exit", () => guest.killNow());
  // SIGTERM/SIGINT: Firecracker has no handler and dies by the signal. We do the
  // same (re-raise with the default action) after killing the guest process group.
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      guest.killNow();
      process.kill(process.pid, sig);
    });
  }
  process.once("SIGHUP", () => void shutdown(156, "SIGHUP"));
  if (process.env.FC_SIM_EXIT_WITH_PARENT === "1") {
    // Under jailer-sim (which stands for an exec'd FC): die if the jailer dies, like one process would.
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) {
        guest.killNow();
        process.kill(process.pid, "SIGKILL");
      }
    }, 200).unref();
  }

  const vmm = new Vmm({
    instanceId: args.id,
    logger,
    metrics,
    guest,
    enablePci: args.enablePci,
    mmdsSizeLimit: args.mmdsSizeLimit ?? args.httpApiMaxPayloadSize,
    exit: (code) => void shutdown(code),
  });
  if (args.metadata !== undefined) {
    try {
      vmm.setMetadata(JSON.parse(readFileSync(args.metadata, "utf8")));
    } catch (e) {
      logger.log("Error", "main", `Failed to load metadata: ${(e as Error).message}`);
      return exitWith(1, "Metadata");
    }
  }

  if (!args.noApi) {
    if (existsSync(args.apiSock)) {
      logger.log(
        "Error",
        "main",
        `RunWithApiError error: Failed to open the API socket at: ${args.apiSock}. Check that it is not already used.`,
      );
      return exitWith(1, `RunWithApi(FailedToBindSocket("${args.apiSock}"))`);
    }
    const server = createMicroHttpServer({
      maxPayloadBytes: args.httpApiMaxPayloadSize,
      handle: createApiHandler({
        vmm,
        logger,
        metrics,
        onFatal: (message) => {
          logger.log(
            "Error",
            "main",
            `RunWithApiError error: Failed to build MicroVM: Loading snapshot failed.. ${message}`,
          );
          void shutdown(1, "RunWithApi(BuildMicroVmError(Restore))");
        },
      }),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(args.apiSock, () => resolve());
      });
    } catch {
      logger.log(
        "Error",
        "main",
        `RunWithApiError error: Failed to open the API socket at: ${args.apiSock}. Check that it is not already used.`,
      );
      return exitWith(1, `RunWithApi(FailedToBindSocket("${args.apiSock}"))`);
    }
    logger.log("Info", "fc_api", "API server started.");
  }
  if (args.configFile !== undefined) {
    try {
      await bootFromConfigFile(args.configFile, vmm, logger);
    } catch (e) {
      const mode = args.noApi ? "RunWithoutApiError" : "RunWithApiError";
      logger.log(
        "Error",
        "main",
        `${mode} error: Failed to build MicroVM from Json: ${(e as Error).message}`,
      );
      await shutdown(1, `${mode}(BuildMicroVMFromJson)`);
    }
  }
}

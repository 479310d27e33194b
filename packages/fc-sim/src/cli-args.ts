/** Parsed `firecracker` command line (v1.14.2 flag set). */
export type FcArgs = {
  apiSock: string;
  id: string;
  level: string | undefined;
  logPath: string | undefined;
  showLevel: boolean;
  showLogOrigin: boolean;
  module: string | undefined;
  metricsPath: string | undefined;
  metadata: string | undefined;
  noSeccomp: boolean;
  seccompFilter: string | undefined;
  httpApiMaxPayloadSize: number;
  mmdsSizeLimit: number | undefined;
  configFile: string | undefined;
  noApi: boolean;
  bootTimer: boolean;
  enablePci: boolean;
  version: boolean;
  help: boolean;
  snapshotVersion: boolean;
  describeSnapshot: string | undefined;
};

/** A command line Firecracker rejects (exit code 153). */
export class ArgsError extends Error {
  override readonly name = "ArgsError";
}

const valueFlags = new Set([
  "api-sock",
  "id",
  "level",
  "log-path",
  "module",
  "metrics-path",
  "metadata",
  "seccomp-filter",
  "http-api-max-payload-size",
  "mmds-size-limit",
  "config-file",
  "describe-snapshot",
  "start-time-us",
  "start-time-cpu-us",
  "parent-cpu-time-us",
]);
const boolFlags = new Set([
  "show-level",
  "show-log-origin",
  "no-seccomp",
  "no-api",
  "boot-timer",
  "enable-pci",
  "version",
  "help",
  "snapshot-version",
]);

/** Help text, as `firecracker --help` prints it (abridged descriptions). */
export const helpText = `Firecracker v1.14.2

optional arguments:
${[...valueFlags, ...boolFlags]
  .sort()
  .map((f) => `  --${f}${valueFlags.has(f) ? ` <${f}>` : ""}`)
  .join("\n")}
`;

function fail(msg: string): never {
  throw new ArgsError(`${msg} \\n\\nFor more information try --help.`);
}

/**
 * Parses argv (without node and script) like Firecracker's `arg_parser`:
 * `--name value` only, no `=` form, each flag at most once.
 * @throws ArgsError with Firecracker's wording.
 */
export function parseFcArgs(argv: readonly string[]): FcArgs {
  const seen = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (!a.startsWith("--"))
      fail(`Found argument '${a}' which wasn't expected, or isn't valid in this context.`);
    const name = a.slice(2);
    if (!valueFlags.has(name) && !boolFlags.has(name))
      fail(`Found argument '${name}' which wasn't expected, or isn't valid in this context.`);
    if (seen.has(name)) fail(`The argument '${name}' was provided more than once.`);
    if (valueFlags.has(name)) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--"))
        fail(`The argument '${name}' requires a value, but none was supplied.`);
      seen.set(name, v);
      i++;
    } else seen.set(name, true);
  }
  const str = (n: string): string | undefined => {
    const v = seen.get(n);
    return typeof v === "string" ? v : undefined;
  };
  const int = (n: string): number | undefined => {
    const v = str(n);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) fail(`Invalid value for '${n}': ${v}.`);
    return Number(v);
  };
  if (seen.has("no-seccomp") && seen.has("seccomp-filter"))
    fail("Argument 'seccomp-filter' cannot be used together with argument 'no-seccomp'.");
  if (seen.has("no-api") && !seen.has("config-file"))
    fail("Argument 'config-file' required, but not found.");
  return {
    apiSock: str("api-sock") ?? "/run/firecracker.socket",
    id: str("id") ?? "anonymous-instance",
    level: str("level"),
    logPath: str("log-path"),
    showLevel: seen.has("show-level"),
    showLogOrigin: seen.has("show-log-origin"),
    module: str("module"),
    metricsPath: str("metrics-path"),
    metadata: str("metadata"),
    noSeccomp: seen.has("no-seccomp"),
    seccompFilter: str("seccomp-filter"),
    httpApiMaxPayloadSize: int("http-api-max-payload-size") ?? 51200,
    mmdsSizeLimit: int("mmds-size-limit"),
    configFile: str("config-file"),
    noApi: seen.has("no-api"),
    bootTimer: seen.has("boot-timer"),
    enablePci: seen.has("enable-pci"),
    version: seen.has("version"),
    help: seen.has("help"),
    snapshotVersion: seen.has("snapshot-version"),
    describeSnapshot: str("describe-snapshot"),
  };
}

/**
 * Checks an instance id like v1.14.2: `[A-Za-z0-9-]`, 1–64 chars.
 * @returns the panic message text, or undefined when valid.
 */
export function checkInstanceId(id: string): string | undefined {
  if (id.length < 1 || id.length > 64)
    return `Invalid instance ID: InvalidLength(${id.length}, 1, 64)`;
  for (let i = 0; i < id.length; i++) {
    const c = id[i] ?? "";
    if (!/[A-Za-z0-9-]/.test(c)) return `Invalid instance ID: InvalidChar('${c}', ${i})`;
  }
  return undefined;
}

import { FirecrackerLaunchError } from "../errors.js";
import type { LaunchOptions } from "../launcher.js";

const idPattern = /^[A-Za-z0-9-]{1,64}$/;

/** Throws unless `id` is a valid Firecracker/jailer id (`[A-Za-z0-9-]`, 1–64 chars; FC panics otherwise). */
export function checkInstanceId(id: string): void {
  if (!idPattern.test(id)) {
    throw new FirecrackerLaunchError(
      `invalid Firecracker instance id ${JSON.stringify(id)}: use 1-64 characters from [A-Za-z0-9-]`,
    );
  }
}

/** Firecracker flags for `options`, except `--id` (the jailer adds its own) and `--api-sock`. */
export function firecrackerFlags(options: LaunchOptions): string[] {
  const args: string[] = [];
  if (options.logLevel) args.push("--level", options.logLevel);
  const seccomp = options.seccomp ?? { mode: "default" };
  if (seccomp.mode === "off") args.push("--no-seccomp");
  else if (seccomp.mode === "filter") args.push("--seccomp-filter", seccomp.path);
  if (options.httpApiMaxPayloadSizeBytes !== undefined) {
    args.push("--http-api-max-payload-size", String(options.httpApiMaxPayloadSizeBytes));
  }
  if (options.mmdsSizeLimitBytes !== undefined) {
    args.push("--mmds-size-limit", String(options.mmdsSizeLimitBytes));
  }
  args.push(...(options.extraArgs ?? []));
  return args;
}

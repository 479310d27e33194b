/**
 * The parts of an image's config a sandbox honours, as defaults of the
 * processes it runs (Create's initial command, Run, Exec): `Env`,
 * `WorkingDir`, `User` and `Entrypoint` + `Cmd`. A request's own values win:
 * its `cmd` replaces Entrypoint + Cmd whole (a sandbox runs what the caller
 * typed, not `<entrypoint> <cmd>`), its env is laid over the image's key by
 * key, its working_dir and user replace the image's. Not honoured:
 * `ExposedPorts`, `Volumes`, `StopSignal`, `Healthcheck`, `Labels`.
 */
import type { ProcessSpec } from "../sandbox/types.js";
import type { OciImageConfig } from "./types.js";

/** Process defaults taken from an image config; persisted with the sandbox. */
export interface ImageProcessDefaults {
  /** Entrypoint followed by Cmd; empty when the image has neither. */
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  /** The user part of `User` (a `:group` suffix is dropped: the agent takes a user only). */
  readonly user?: string;
}

/** The process defaults of an image config. */
export function imageProcessDefaults(config: OciImageConfig): ImageProcessDefaults {
  const c = config.config ?? {};
  const env: Record<string, string> = {};
  for (const entry of c.Env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const user = c.User?.split(":")[0];
  return {
    cmd: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
    env,
    ...(c.WorkingDir && { workingDir: c.WorkingDir }),
    ...(user && { user }),
  };
}

/** `spec` with the image's defaults filled in where the request left a value out. */
export function withImageDefaults(
  spec: ProcessSpec,
  defaults: ImageProcessDefaults | undefined,
): ProcessSpec {
  if (!defaults) return spec;
  const workingDir = spec.workingDir ?? defaults.workingDir;
  const user = spec.user ?? defaults.user;
  return {
    ...spec,
    cmd: spec.cmd.length > 0 ? spec.cmd : defaults.cmd,
    env: { ...defaults.env, ...spec.env },
    ...(workingDir !== undefined && { workingDir }),
    ...(user !== undefined && { user }),
  };
}

import type { BackgroundTasks, Logger } from "../internal/index.js";
import { type ResolvedImage, resolveImage } from "../storage/index.js";
import type { SandboxManagerOptions } from "./options.js";
import type { SandboxRegistry } from "./sandbox-registry.js";
import type { Views } from "./views.js";

/** What the sandbox modules share (built once by SandboxManager). */
export interface SandboxContext {
  readonly opts: SandboxManagerOptions;
  readonly registry: SandboxRegistry;
  readonly tasks: BackgroundTasks;
  readonly views: Views;
  readonly log: Logger;
  /** True once the daemon began shutting down (no new sandboxes; exits are expected). */
  readonly closing: () => boolean;
}

/** The message of an error, or the value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Event attributes of a Firecracker exit. */
export function exitAttributes(exit: {
  code: number | null;
  signal: string | null;
}): Record<string, string> {
  return {
    ...(exit.code !== null && { exit_code: String(exit.code) }),
    ...(exit.signal !== null && { signal: exit.signal }),
  };
}

/**
 * Resolves a kernel or rootfs under the daemon's image roots; `trusted` for
 * config values and the daemon's own paths (a request's are confined).
 */
export function resolveSandboxImage(
  opts: SandboxManagerOptions,
  nameOrPath: string,
  field: string,
  options: { trusted: boolean },
): Promise<ResolvedImage> {
  return resolveImage(opts.imagesDir, nameOrPath, field, {
    allowedRoots: opts.allowedImageRoots ?? [],
    privateDirs: [opts.dataDir],
    trusted: options.trusted,
  });
}

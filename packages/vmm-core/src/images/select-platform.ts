import { FailedPreconditionError } from "../errors.js";
import type { OciDescriptor } from "./types.js";

/** An entry of an image index (OCI index / Docker manifest list). */
export interface IndexEntry extends OciDescriptor {
  readonly platform?: {
    readonly os?: string;
    readonly architecture?: string;
    readonly variant?: string;
  };
}

/** The platform sandboxes run: Firecracker guests are x86_64 Linux. */
export const SANDBOX_PLATFORM = { os: "linux", architecture: "amd64" } as const;

/**
 * Picks the linux/amd64 manifest of an index. Throws FailedPreconditionError
 * naming the platforms the image has when it has no linux/amd64 one
 * (attestation entries, platform `unknown/unknown`, are not listed).
 */
export function selectPlatform(reference: string, entries: readonly IndexEntry[]): IndexEntry {
  const amd64 = entries.filter(
    (e) =>
      e.platform?.os === SANDBOX_PLATFORM.os &&
      e.platform.architecture === SANDBOX_PLATFORM.architecture,
  );
  // A plain amd64 entry before variant-specific ones (amd64/v3 needs newer CPUs).
  const chosen = amd64.find((e) => !e.platform?.variant || e.platform.variant === "v1") ?? amd64[0];
  if (chosen) return chosen;
  throw wrongPlatform(
    reference,
    entries.map((e) => platformName(e.platform)),
  );
}

/** The error for an image with no linux/amd64 variant, naming what it has. */
export function wrongPlatform(
  reference: string,
  platforms: readonly string[],
): FailedPreconditionError {
  const names = [...new Set(platforms.filter((p) => p !== "unknown/unknown"))];
  return new FailedPreconditionError(
    `image ${reference} has no linux/amd64 variant (it has: ${names.length > 0 ? names.join(", ") : "no platforms"}); sandboxes run linux/amd64`,
    { hint: "use an image built for linux/amd64" },
  );
}

function platformName(p: IndexEntry["platform"]): string {
  if (!p) return "unknown/unknown";
  return [p.os ?? "unknown", p.architecture ?? "unknown", p.variant].filter(Boolean).join("/");
}

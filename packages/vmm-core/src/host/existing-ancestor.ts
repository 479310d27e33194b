import { access } from "node:fs/promises";
import { dirname } from "node:path";

/** `dir`, or the nearest directory above it that exists (a host where the daemon never ran). */
export async function existingAncestor(dir: string): Promise<string> {
  for (let d = dir; ; d = dirname(d)) {
    if (
      await access(d).then(
        () => true,
        () => false,
      )
    )
      return d;
    if (d === dirname(d)) return d;
  }
}

/**
 * The security rules of layer extraction, checked on the tar headers of every
 * layer before anything is unpacked. umoci (the unpacker, layer-unpack.ts)
 * already resolves every path inside the root ("secure join": `..` and
 * absolute symlink targets are clamped to the root), so nothing can be
 * written outside the image being built; these rules turn an archive that
 * *tries* to reach outside into a rejection of the whole image instead of a
 * silently different file tree:
 *
 * - an entry name that is absolute or has a `..` component;
 * - a hard link whose target is absolute or has a `..` component;
 * - an entry (or hard-link target) reached through a symbolic link, from this
 *   or an earlier layer, whose target climbs above the root with `..`.
 *
 * Symbolic links themselves may point anywhere (they are data in the guest's
 * disk, resolved by the guest in its own root); an absolute target is
 * resolved inside the root, as the guest and umoci do (`/var/run -> /run`).
 */
import { posix } from "node:path";
import type { TarEntry } from "./tar-entries.js";

/** Why a layer entry was refused: the entry and the rule. */
export interface LayerPathViolation {
  readonly entry: string;
  readonly reason: string;
}

const MAX_SYMLINK_HOPS = 40;

/** Tracks the symbolic links of the layers seen so far and checks each entry against the rules. */
export class LayerPathGuard {
  /** Normalized path → [target, layer index], for every symlink still present. */
  readonly #symlinks = new Map<string, [string, number]>();
  #layer = -1;

  /** Starts the next layer (whiteouts then hide links of the layers before it). */
  nextLayer(): void {
    this.#layer++;
  }

  /** Checks one entry of the current layer; returns the violation, or undefined when it is fine. */
  check(entry: TarEntry): LayerPathViolation | undefined {
    const parts = archivePath(entry.name);
    if (typeof parts === "string") return { entry: entry.name, reason: parts };
    if (parts.length === 0) return undefined; // the root itself ("./")
    const base = parts[parts.length - 1] as string;
    const parent = parts.slice(0, -1);
    const viaParent = this.#resolve(parent);
    if (typeof viaParent === "string") return { entry: entry.name, reason: viaParent };
    if (base.startsWith(".wh.")) {
      // Whiteouts hide lower layers' paths: links below them are gone.
      const hidden = base === ".wh..wh..opq" ? viaParent : [...viaParent, base.slice(4)];
      this.#forgetLower(hidden.join("/"));
      return undefined;
    }
    // Keyed by the real path (parent links followed), the path the guest would see.
    const key = [...viaParent, base].join("/");
    if (entry.type === "1") {
      const target = archivePath(entry.linkname);
      if (typeof target === "string") {
        return {
          entry: entry.name,
          reason: `hard link target ${JSON.stringify(entry.linkname)}: ${target}`,
        };
      }
      const resolved = this.#resolve(target);
      if (typeof resolved === "string") {
        return {
          entry: entry.name,
          reason: `hard link target ${JSON.stringify(entry.linkname)}: ${resolved}`,
        };
      }
    }
    // Whatever this entry is, it replaces what was at its path.
    this.#symlinks.delete(key);
    if (entry.type === "2") this.#symlinks.set(key, [entry.linkname, this.#layer]);
    return undefined;
  }

  /** Follows symlinks in `parts` (inside the root); a string says why it cannot. */
  #resolve(parts: readonly string[]): string[] | string {
    let todo = [...parts];
    let out: string[] = [];
    let hops = 0;
    while (todo.length > 0) {
      const c = todo.shift() as string;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (out.length === 0) return "goes through a symbolic link that points above the root";
        out.pop();
        continue;
      }
      const link = this.#symlinks.get([...out, c].join("/"));
      if (link === undefined) {
        out.push(c);
        continue;
      }
      if (++hops > MAX_SYMLINK_HOPS) return `more than ${MAX_SYMLINK_HOPS} symbolic links`;
      const target = link[0];
      if (target.startsWith("/")) out = [];
      todo = [...target.split("/"), ...todo];
    }
    return out;
  }

  /** Drops the links of earlier layers at `path` or below it (a whiteout hides them). */
  #forgetLower(path: string): void {
    for (const [k, [, layer]] of this.#symlinks) {
      if (layer >= this.#layer) continue;
      if (path === "" || k === path || k.startsWith(`${path}/`)) this.#symlinks.delete(k);
    }
  }
}

/** The components of an archive path (`./` prefixes and trailing `/` dropped), or why it is refused. */
function archivePath(name: string): string[] | string {
  if (name.includes("\0")) return "contains NUL";
  if (name.startsWith("/")) return "is an absolute path";
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return "has a '..' component";
  return parts.map((p) => posix.normalize(p));
}

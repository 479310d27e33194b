import { open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { PulledImage } from "./types.js";

/** One pulled image as recorded: the contract's PulledImage plus the index it was chosen from. */
export interface ImageRecord extends PulledImage {
  /** Digest of the multi-platform index the manifest was chosen from, if there was one. */
  readonly indexDigest?: string;
  /** Media type and size of the manifest blob (for the layout's index.json). */
  readonly manifestMediaType: string;
  readonly manifestSize: number;
}

const RECORDS_FILE = "images.json";

/**
 * The store's list of pulled images (`images.json`: reference → manifest,
 * config, layers, size, pulled time), plus the OCI layout's `index.json`
 * derived from it (one manifest entry per reference, named by the
 * `org.opencontainers.image.ref.name` annotation, so skopeo/umoci can read the
 * layout). Both are written atomically (temp file, fsync, rename): a crash
 * leaves the old or the new list, never a torn one.
 */
export class ImageRecords {
  private readonly root: string;
  private readonly byReference = new Map<string, ImageRecord>();

  private constructor(root: string) {
    this.root = root;
  }

  /** Loads the records of the layout at `root` (none when the file is absent). */
  static async load(root: string): Promise<ImageRecords> {
    const records = new ImageRecords(root);
    let text: string | undefined;
    try {
      text = await readFile(join(root, RECORDS_FILE), "utf8");
    } catch (err) {
      if ((err as { code?: unknown }).code !== "ENOENT") throw err;
    }
    if (text !== undefined) {
      const doc = JSON.parse(text) as { images?: ImageRecord[] };
      for (const r of doc.images ?? []) records.byReference.set(r.reference, r);
    }
    return records;
  }

  get(reference: string): ImageRecord | undefined {
    return this.byReference.get(reference);
  }

  /** Every record, oldest pull first. */
  all(): ImageRecord[] {
    return [...this.byReference.values()].sort((a, b) => a.pulledAtMs - b.pulledAtMs);
  }

  /** Adds or replaces the record of `record.reference` and writes both files. */
  async put(record: ImageRecord): Promise<void> {
    this.byReference.set(record.reference, record);
    await this.write();
  }

  /** Removes a reference's record and writes both files. */
  async delete(reference: string): Promise<void> {
    this.byReference.delete(reference);
    await this.write();
  }

  /** Every digest some record needs: index, manifest, config and layers. */
  referencedDigests(): Set<string> {
    const out = new Set<string>();
    for (const r of this.byReference.values()) {
      if (r.indexDigest) out.add(r.indexDigest);
      out.add(r.manifestDigest);
      out.add(r.configDescriptor.digest);
      for (const l of r.layers) out.add(l.digest);
    }
    return out;
  }

  private async write(): Promise<void> {
    const records = this.all();
    await writeAtomic(
      join(this.root, RECORDS_FILE),
      `${JSON.stringify({ version: 1, images: records }, null, 1)}\n`,
    );
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: records.map((r) => ({
        mediaType: r.manifestMediaType,
        digest: r.manifestDigest,
        size: r.manifestSize,
        platform: { architecture: r.config.architecture, os: r.config.os },
        annotations: { "org.opencontainers.image.ref.name": r.reference },
      })),
    };
    await writeAtomic(join(this.root, "index.json"), `${JSON.stringify(index)}\n`);
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

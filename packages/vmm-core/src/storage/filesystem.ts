import { statfs } from "node:fs/promises";

// statfs(2) f_type magic numbers, from linux/magic.h.
const names: ReadonlyMap<number, string> = new Map([
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0xef53, "ext4"],
  [0x01021994, "tmpfs"],
  [0x794c7630, "overlayfs"],
  [0xca451a4e, "bcachefs"],
  [0x2fc12fc1, "zfs"],
  [0xf2f52010, "f2fs"],
  [0x6969, "nfs"],
  [0xff534d42, "cifs"],
  [0x65735546, "fuse"],
  [0x9fa0, "proc"],
]);

/**
 * Names the filesystem holding `path` ("xfs", "ext4", "tmpfs", …, or
 * "unknown (0x…)"). Never throws: "unknown" when statfs fails.
 */
export async function filesystemName(path: string): Promise<string> {
  try {
    const { type } = await statfs(path);
    return names.get(type) ?? `unknown (0x${type.toString(16)})`;
  } catch {
    return "unknown";
  }
}

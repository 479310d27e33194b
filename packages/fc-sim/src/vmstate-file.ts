/**
 * fc-sim's vmstate file: not Firecracker's bincode layout, but the same guarantees.
 *
 *   offset 0   8 bytes  magic "FCSIMVS\0"
 *   offset 8   3 × u16  snapshot data format version, LE (8.0.0, as v1.14.x)
 *   offset 14  u32      payload length n, LE
 *   offset 18  n bytes  payload: the VM config as JSON (UTF-8), paths exactly as given
 *   offset 18+n u64     CRC-64/ECMA-182 of bytes [0, 18+n), LE
 */

const magic = Buffer.from("FCSIMVS\0", "latin1");
/** Snapshot data format version written and accepted (Firecracker 1.14.x uses 8.0.0). */
export const snapshotVersion = [8, 0, 0] as const;

const table: bigint[] = (() => {
  const poly = 0x42f0e1eba9ea3693n;
  const mask = (1n << 64n) - 1n;
  const t: bigint[] = [];
  for (let i = 0n; i < 256n; i++) {
    let c = i << 56n;
    for (let k = 0; k < 8; k++) c = c & (1n << 63n) ? ((c << 1n) ^ poly) & mask : (c << 1n) & mask;
    t.push(c);
  }
  return t;
})();

/** CRC-64/ECMA-182 (non-reflected, init 0), the variant Firecracker's `crc64` crate computes. */
export function crc64(data: Uint8Array): bigint {
  const mask = (1n << 64n) - 1n;
  let crc = 0n;
  for (const b of data)
    crc = (table[Number(((crc >> 56n) ^ BigInt(b)) & 0xffn)]! ^ (crc << 8n)) & mask;
  return crc;
}

/** A vmstate that cannot be used; `message` follows Firecracker's wording. */
export class VmstateError extends Error {
  override readonly name = "VmstateError";
}

/** Serializes `state` into the file format above. */
export function encodeVmstate(state: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(state), "utf8");
  const head = Buffer.alloc(18);
  magic.copy(head, 0);
  snapshotVersion.forEach((v, i) => {
    head.writeUInt16LE(v, 8 + i * 2);
  });
  head.writeUInt32LE(payload.length, 14);
  const body = Buffer.concat([head, payload]);
  const crc = Buffer.alloc(8);
  crc.writeBigUInt64LE(crc64(body));
  return Buffer.concat([body, crc]);
}

/**
 * Parses and verifies a vmstate file's bytes (magic, version, CRC).
 * @throws VmstateError
 */
export function decodeVmstate(buf: Buffer): unknown {
  if (buf.length < 26 || !buf.subarray(0, 8).equals(magic)) {
    throw new VmstateError(
      'Failed to load snapshot state from file: An error occured during bincode decoding: OtherString("invalid magic, not an fc-sim snapshot")',
    );
  }
  const version = [buf.readUInt16LE(8), buf.readUInt16LE(10), buf.readUInt16LE(12)];
  const len = buf.readUInt32LE(14);
  if (buf.length !== 18 + len + 8)
    throw new VmstateError("Failed to load snapshot state from file: CRC64 validation failed");
  if (crc64(buf.subarray(0, 18 + len)) !== buf.readBigUInt64LE(18 + len)) {
    throw new VmstateError("Failed to load snapshot state from file: CRC64 validation failed");
  }
  if (version[0] !== snapshotVersion[0] || (version[1] ?? 0) > snapshotVersion[1]) {
    throw new VmstateError(
      `Failed to load snapshot state from file: Snapshot version mismatch: v${version.join(".")} is not compatible with v${snapshotVersion.join(".")}`,
    );
  }
  try {
    return JSON.parse(buf.subarray(18, 18 + len).toString("utf8"));
  } catch {
    throw new VmstateError("Failed to load snapshot state from file: CRC64 validation failed");
  }
}

/** Returns the format version string of a vmstate (`--describe-snapshot`). */
export function describeVmstate(buf: Buffer): string {
  decodeVmstate(buf);
  return `v${buf.readUInt16LE(8)}.${buf.readUInt16LE(10)}.${buf.readUInt16LE(12)}`;
}

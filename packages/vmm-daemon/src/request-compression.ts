import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/**
 * The compressions the daemon accepts on requests (gzip, br), with every
 * decompression failure answered as INVALID_ARGUMENT. connect-node maps only
 * some zlib errors to it: a truncated gzip or brotli body (Z_BUF_ERROR) would
 * answer INTERNAL, which is reserved for the daemon's own bugs. Too large after
 * decompression stays RESOURCE_EXHAUSTED.
 */
export const REQUEST_COMPRESSIONS: readonly Compression[] = [
  clientDataCompression(compressionGzip),
  clientDataCompression(compressionBrotli),
];

function clientDataCompression(c: Compression): Compression {
  return {
    name: c.name,
    compress: (bytes) => c.compress(bytes),
    decompress: (bytes, readMaxBytes) =>
      c.decompress(bytes, readMaxBytes).catch((err: unknown) => {
        const e = ConnectError.from(err, Code.InvalidArgument);
        if (e.code !== Code.Internal && e.code !== Code.Unknown) throw e;
        throw new ConnectError(
          `request body is not valid ${c.name} data: ${e.cause instanceof Error ? e.cause.message : e.rawMessage}`,
          Code.InvalidArgument,
          undefined,
          undefined,
          err,
        );
      }),
  };
}

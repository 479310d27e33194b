/**
 * `Run true` through @grpc/grpc-js, the reference gRPC implementation for
 * Node: a second, independent client for run-latency, so the gRPC cost is not
 * the cost of one client library. Messages are (de)serialized with the
 * generated protobuf-es schemas; no proto loading.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type RunOutput, RunOutputSchema, RunRequestSchema, SandboxService } from "@vmm/proto";

/** A grpc-js channel to the daemon's Unix socket. */
export interface GrpcJsClient {
  runTrue(id: string, signal: AbortSignal): Promise<{ firstMs: number; code: number | undefined }>;
  close(): void;
}

export function connectGrpcJs(socket: string): GrpcJsClient {
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const path = `/${SandboxService.typeName}/${SandboxService.method.run.name}`;
  return {
    runTrue(id, signal) {
      return new Promise((resolve, reject) => {
        const call = client.makeServerStreamRequest<Uint8Array, RunOutput>(
          path,
          (req) => Buffer.from(req),
          (buf) => fromBinary(RunOutputSchema, buf),
          toBinary(RunRequestSchema, create(RunRequestSchema, { id, cmd: ["true"] })),
        );
        const onAbort = () => call.cancel();
        signal.addEventListener("abort", onAbort, { once: true });
        let firstMs: number | undefined;
        let code: number | undefined;
        call.on("data", (m: RunOutput) => {
          firstMs ??= performance.now();
          if (m.done) code = m.exitCode;
        });
        call.on("error", (err) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        });
        call.on("end", () => {
          signal.removeEventListener("abort", onAbort);
          resolve({ firstMs: firstMs ?? performance.now(), code });
        });
      });
    },
    close: () => client.close(),
  };
}

import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import * as pb from "@vmm/proto";
import { healthV1, reflectionV1, reflectionV1alpha } from "@vmm/proto";

/**
 * A @grpc/grpc-js client built dynamically from our descriptor set (no
 * generated grpc-js code): an independent gRPC implementation talking to the
 * daemon, as third-party clients will.
 */
export function loadGrpcJsPackage(): grpc.GrpcObject {
  const set = create(FileDescriptorSetSchema, {
    file: [
      pb.file_sandbox_v1_sandbox.proto,
      healthV1.file_grpc_health_v1_health.proto,
      reflectionV1.file_grpc_reflection_v1_reflection.proto,
      reflectionV1alpha.file_grpc_reflection_v1alpha_reflection.proto,
    ],
  });
  const def = loadFileDescriptorSetFromBuffer(Buffer.from(toBinary(FileDescriptorSetSchema, set)), {
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def);
}

/** A dynamically loaded grpc-js method. */
export type Method = (...args: unknown[]) => unknown;

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: object) => grpc.Client;

/** Looks up a service constructor by its full name, e.g. "grpc.health.v1.Health". */
export function serviceClient(
  pkg: grpc.GrpcObject,
  fullName: string,
  socket: string,
): grpc.Client & Record<string, Method> {
  let node: unknown = pkg;
  for (const part of fullName.split(".")) node = (node as Record<string, unknown>)[part];
  const Client = node as Ctor;
  return new Client(`unix://${socket}`, grpc.credentials.createInsecure()) as never;
}

/** Calls a unary method and resolves with its response or rejects with the ServiceError. */
export function unary<T>(client: Record<string, Method>, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]!(req, (err: grpc.ServiceError | null, res: T) =>
      err ? reject(err) : resolve(res),
    );
  });
}

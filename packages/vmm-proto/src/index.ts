// Generated code (buf + protoc-gen-es); see proto/ and buf.gen.yaml. The contract's string
// lists are in ./wire.ts, exported separately as `@vmm/proto/wire`.

export * as healthV1 from "./gen/grpc/health/v1/health_pb.js";
export * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
export * from "./gen/sandbox/v1/sandbox_pb.js";

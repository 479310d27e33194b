// Generated code only (buf + protoc-gen-es); see proto/ and buf.gen.yaml.

export * as healthV1 from "./gen/grpc/health/v1/health_pb.js";
export * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
export * from "./gen/sandbox/v1/sandbox_pb.js";

import {
  create,
  createRegistry,
  type DescFile,
  type MessageInitShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { reflectionV1, reflectionV1alpha } from "@vmm/proto";

type Request = reflectionV1.ServerReflectionRequest;
/** A response as an init shape: the v1 and v1alpha services each `create()` their own message from it. */
type Response = MessageInitShape<typeof reflectionV1.ServerReflectionResponseSchema>;

/**
 * Answers server reflection requests from the generated descriptors, so that
 * grpcurl can list and describe our services with no .proto file at hand.
 */
export class ReflectionIndex {
  private readonly registry: Registry;
  private readonly filesByName = new Map<string, DescFile>();
  private readonly serviceNames: readonly string[];

  constructor(files: readonly DescFile[], serviceNames: readonly string[]) {
    this.registry = createRegistry(...files);
    const add = (f: DescFile) => {
      if (this.filesByName.has(f.proto.name)) return;
      this.filesByName.set(f.proto.name, f);
      for (const dep of f.dependencies) add(dep);
    };
    for (const f of files) add(f);
    this.serviceNames = serviceNames;
  }

  respond(req: Request): Response {
    const base = { validHost: req.host, originalRequest: req };
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          ...base,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: this.serviceNames.map((name) => ({ name })) },
          },
        };
      case "fileByFilename": {
        const file = this.filesByName.get(r.value);
        return file
          ? this.files(base, file)
          : this.error(base, Code.NotFound, `file not found: ${r.value}`);
      }
      case "fileContainingSymbol": {
        const file = this.fileOfSymbol(r.value);
        return file
          ? this.files(base, file)
          : this.error(base, Code.NotFound, `symbol not found: ${r.value}`);
      }
      case "fileContainingExtension":
        return this.error(base, Code.NotFound, `no extensions of ${r.value.containingType}`);
      case "allExtensionNumbersOfType":
        return this.registry.getMessage(r.value)
          ? {
              ...base,
              messageResponse: {
                case: "allExtensionNumbersResponse",
                value: { baseTypeName: r.value, extensionNumber: [] },
              },
            }
          : this.error(base, Code.NotFound, `type not found: ${r.value}`);
      default:
        return this.error(base, Code.InvalidArgument, "empty reflection request");
    }
  }

  private fileOfSymbol(symbol: string): DescFile | undefined {
    const desc = this.registry.get(symbol);
    if (desc) return desc.file;
    // Methods and fields are named "<parent>.<member>".
    const parent = symbol.slice(0, symbol.lastIndexOf("."));
    const owner = parent ? this.registry.get(parent) : undefined;
    if (owner && (owner.kind === "service" || owner.kind === "message")) return owner.file;
    return undefined;
  }

  private files(base: Pick<Response, "validHost" | "originalRequest">, file: DescFile): Response {
    const ordered: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      ordered.push(f);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return {
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: {
          fileDescriptorProto: ordered.map((f) => toBinary(FileDescriptorProtoSchema, f.proto)),
        },
      },
    };
  }

  private error(
    base: Pick<Response, "validHost" | "originalRequest">,
    code: Code,
    message: string,
  ): Response {
    return {
      ...base,
      messageResponse: {
        case: "errorResponse",
        value: { errorCode: code, errorMessage: message },
      },
    };
  }
}

/** Registers grpc.reflection.v1 and v1alpha (grpcurl still asks for v1alpha). */
export function registerReflectionService(router: ConnectRouter, index: ReflectionIndex): void {
  router.service(reflectionV1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(reflectionV1.ServerReflectionResponseSchema, index.respond(req));
      }
    },
  });
  router.service(reflectionV1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      // v1alpha messages have the same fields and numbers as v1: the shapes carry over.
      for await (const req of requests) {
        const { originalRequest: _, ...res } = index.respond(req as unknown as Request);
        yield create(reflectionV1alpha.ServerReflectionResponseSchema, {
          ...(res as MessageInitShape<typeof reflectionV1alpha.ServerReflectionResponseSchema>),
          originalRequest: req,
        });
      }
    },
  });
}

import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { healthV1 } from "@vmm/proto";
import { describe, expect, it } from "vitest";
import { createRedactInterceptor } from "./redact-interceptor.js";

const paths = [
  { path: "/var/lib/vmm", placeholder: "<data_dir>" },
  { path: "/var/lib/vmm/images", placeholder: "<images_dir>" },
];

function client(fail: () => never) {
  const transport = createRouterTransport(
    ({ service }) => {
      service(healthV1.Health, {
        check: () => fail(),
        async *watch() {
          yield { status: healthV1.HealthCheckResponse_ServingStatus.SERVING };
          fail();
        },
      });
    },
    { router: { interceptors: [createRedactInterceptor(paths)] } },
  );
  return createClient(healthV1.Health, transport);
}

describe("createRedactInterceptor", () => {
  it.each([
    [
      "cannot open /var/lib/vmm/sandboxes/a/api.sock",
      "cannot open <data_dir>/sandboxes/a/api.sock",
    ],
    ["/var/lib/vmm/images/vmlinux is not an ELF", "<images_dir>/vmlinux is not an ELF"],
    ["nothing to hide", "nothing to hide"],
  ])("unary: %s", async (message, expected) => {
    const err = await client(() => {
      throw new ConnectError(message, Code.FailedPrecondition);
    })
      .check({})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).rawMessage).toBe(expected);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
  });

  it("streams: an error raised while iterating is redacted too", async () => {
    const c = client(() => {
      throw new ConnectError("lost /var/lib/vmm/sandboxes/b", Code.Unavailable);
    });
    const seen: unknown[] = [];
    const err = await (async () => {
      for await (const m of c.watch({})) seen.push(m);
    })().catch((e: unknown) => e);
    expect(seen).toHaveLength(1);
    expect((err as ConnectError).rawMessage).toBe("lost <data_dir>/sandboxes/b");
  });
});

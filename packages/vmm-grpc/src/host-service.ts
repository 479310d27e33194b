import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { HostCheck } from "@vmm/core";
import * as pb from "@vmm/proto";

/** Runs the host checks (the daemon coalesces concurrent calls and redacts host paths). */
export type HostChecker = (signal: AbortSignal) => Promise<readonly HostCheck[]>;

/** Registers sandbox.v1.HostService; without a checker CheckHost answers UNIMPLEMENTED. */
export function registerHostService(router: ConnectRouter, check: HostChecker | undefined): void {
  router.service(pb.HostService, {
    async checkHost(_req, ctx) {
      if (!check)
        throw new ConnectError("host checks are not wired in this server", Code.Unimplemented);
      const checks = await check(ctx.signal);
      return create(pb.CheckHostResponseSchema, {
        checks: checks.map((c) =>
          create(pb.HostCheckSchema, {
            name: c.name,
            status: c.status,
            detail: c.detail,
            fix: c.fix ?? "",
          }),
        ),
        ok: !checks.some((c) => c.status === "fail"),
      });
    },
  });
}

import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  DeadlineExceededError,
  InvalidArgumentError,
  isEventAction,
  isSandboxState,
  type ProcessSession,
} from "@vmm/core";
import * as pb from "@vmm/proto";
import {
  createSpecFromProto,
  processOutputFields,
  processSpecFromProto,
  sandboxEventToProto,
  sandboxInfoToProto,
  sandboxSummaryToProto,
} from "./convert.js";
import type { SandboxApi } from "./sandbox-api.js";

/** Registers sandbox.v1.SandboxService over `sandboxes`. */
export function registerSandboxService(router: ConnectRouter, sandboxes: SandboxApi): void {
  router.service(pb.SandboxService, {
    async create(req) {
      const view = await sandboxes.create(createSpecFromProto(req));
      return { id: view.id, ipAddress: view.network?.ipAddress ?? "", state: view.state };
    },

    async *run(req, ctx) {
      requireId(req.id);
      const session = await sandboxes.run(req.id, processSpecFromProto(req), ctx.signal);
      yield* streamOutput(session, pb.RunOutputSchema.typeName);
    },

    async *exec(inputs, ctx) {
      const iterator = inputs[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done || first.value.payload.case !== "init") {
        throw new InvalidArgumentError("payload", "the first ExecInput must carry init");
      }
      const init = first.value.payload.value;
      requireId(init.id);
      const session = await sandboxes.exec(init.id, processSpecFromProto(init), ctx.signal);
      const pump = pumpInput(iterator, session, ctx);
      try {
        yield* streamOutput(session, pb.ExecOutputSchema.typeName);
      } finally {
        await pump.catch(() => {});
      }
    },

    async stop(req) {
      requireId(req.id);
      await sandboxes.stop(req.id, req.timeoutSeconds === 0 ? 30 : req.timeoutSeconds);
      return {};
    },

    async remove(req) {
      requireId(req.id);
      await sandboxes.remove(req.id, { force: req.force });
      return {};
    },

    inspect(req) {
      requireId(req.id);
      return sandboxInfoToProto(sandboxes.inspect(req.id));
    },

    list(req) {
      if (req.state !== "" && !isSandboxState(req.state)) {
        throw new InvalidArgumentError(
          "state",
          `unknown state ${JSON.stringify(req.state)}; use starting, ready, running, stopping, stopped or failed`,
        );
      }
      const views = sandboxes.list({
        ...(req.state !== "" && isSandboxState(req.state) && { state: req.state }),
        labels: req.labels,
      });
      return { sandboxes: views.map(sandboxSummaryToProto) };
    },

    async *events(req, ctx) {
      if (req.action !== "" && !isEventAction(req.action)) {
        throw new InvalidArgumentError("action", `unknown action ${JSON.stringify(req.action)}`);
      }
      const filter = {
        ...(req.id !== "" && { id: req.id }),
        ...(req.action !== "" && isEventAction(req.action) && { action: req.action }),
      };
      for await (const event of sandboxes.events(filter, ctx.signal))
        yield sandboxEventToProto(event);
    },
  });
}

function requireId(id: string): void {
  if (id === "") throw new InvalidArgumentError("id", "must not be empty");
}

async function* streamOutput(session: ProcessSession, _typeName: string) {
  for await (const out of session.output) {
    if (out.kind === "exit" && out.timedOut) {
      throw new DeadlineExceededError("the command ran past timeout_seconds and was killed");
    }
    yield processOutputFields(out);
  }
}

async function pumpInput(
  iterator: AsyncIterator<pb.ExecInput>,
  session: ProcessSession,
  ctx: HandlerContext,
): Promise<void> {
  for (;;) {
    const next = await iterator.next();
    if (next.done || ctx.signal.aborted) break;
    const p = next.value.payload;
    switch (p.case) {
      case "stdin":
        if (p.value.length === 0) await session.closeStdin();
        else await session.writeStdin(p.value);
        break;
      case "resize":
        await session.resize(p.value.width, p.value.height);
        break;
      case "init":
        throw new InvalidArgumentError(
          "payload",
          "init may only be sent once, in the first ExecInput",
        );
      default:
        break;
    }
  }
  await session.closeStdin();
}

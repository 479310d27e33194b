import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  DEFAULT_NETWORK_POLICY,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  type ProcessSession,
  quote,
  type SandboxView,
} from "@vmm/core";
import * as pb from "@vmm/proto";
import { isEventAction, isSandboxState, SANDBOX_STATES } from "@vmm/proto/wire";
import {
  createSpecFromProto,
  networkPolicyFromProto,
  processOutputFields,
  processSpecFromProto,
  sandboxEventToProto,
} from "./convert.js";
import { ListAnswers } from "./list-answers.js";
import { DEFAULT_LIST_PAGING, type ListPaging, takePage } from "./list-page.js";
import { listProcesses, signalProcess } from "./process-calls.js";
import type { SandboxApi } from "./sandbox-api.js";
import { ViewMessages } from "./view-messages.js";

/** The URL under which a sandbox's exposed guest port is served over HTTP (the daemon's proxy). */
export type ExposedPortUrl = (id: string, guestPort: number) => string;

/**
 * Registers sandbox.v1.SandboxService over `sandboxes`; List pages per
 * `paging`; ExposePort answers a URL when `exposedPortUrl` is given.
 */
export function registerSandboxService(
  router: ConnectRouter,
  sandboxes: SandboxApi,
  paging: ListPaging = DEFAULT_LIST_PAGING,
  exposedPortUrl?: ExposedPortUrl,
): void {
  const messages = new ViewMessages();
  const listAnswers = new ListAnswers<SandboxView, pb.ListSandboxesResponse>();
  router.service(pb.SandboxService, {
    async create(req, ctx) {
      const view = await sandboxes.create(createSpecFromProto(req), { signal: ctx.signal });
      return { id: view.id, ipAddress: view.network?.ipAddress ?? "", state: view.state };
    },

    async *run(req, ctx) {
      requireId(req.id);
      const session = await sandboxes.run(req.id, processSpecFromProto(req), ctx.signal);
      yield* streamOutput(session);
    },

    async *exec(inputs, ctx) {
      const iterator = inputs[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done || first.value.payload.case !== "init") {
        throw new InvalidArgumentError("payload", "the first ExecInput must carry init");
      }
      const init = first.value.payload.value;
      requireId(init.id);
      // A bad input message ends this call (and kills its process), nothing else.
      const inputFailed = new AbortController();
      const signal = AbortSignal.any([ctx.signal, inputFailed.signal]);
      const session = await sandboxes.exec(init.id, processSpecFromProto(init), signal);
      let inputError: unknown;
      pumpInput(iterator, session, signal).catch((err: unknown) => {
        inputError = err;
        inputFailed.abort(err);
      });
      try {
        yield* streamOutput(session);
      } catch (err) {
        throw inputError ?? err;
      }
      if (inputError !== undefined) throw inputError;
      // The process exited: the call ends now, whether or not the client closed its input.
    },

    async stop(req) {
      requireId(req.id);
      await sandboxes.stop(req.id, req.timeoutSeconds === 0 ? 30 : req.timeoutSeconds);
      return {};
    },

    async pause(req) {
      requireId(req.id);
      return messages.info(await sandboxes.pause(req.id));
    },

    async resume(req) {
      requireId(req.id);
      return messages.info(await sandboxes.resume(req.id));
    },

    async exposePort(req) {
      requireId(req.id);
      const { hostAddress } = await sandboxes.exposePort(req.id, req.guestPort, req.protocol);
      return { hostAddress, url: exposedPortUrl?.(req.id, req.guestPort) ?? "" };
    },

    async updateNetworkPolicy(req) {
      requireId(req.id);
      const policy = req.policy ? networkPolicyFromProto(req.policy) : DEFAULT_NETWORK_POLICY;
      await sandboxes.updateNetworkPolicy(req.id, policy);
      return {};
    },

    async remove(req) {
      requireId(req.id);
      await sandboxes.remove(req.id, { force: req.force });
      return {};
    },

    inspect(req) {
      requireId(req.id);
      return messages.info(sandboxes.inspect(req.id));
    },

    list(req) {
      if (req.state !== "" && !isSandboxState(req.state)) {
        throw new InvalidArgumentError(
          "state",
          `unknown state ${quote(req.state)}; use one of ${SANDBOX_STATES.join(", ")}`,
        );
      }
      const views = sandboxes.list({
        ...(req.state !== "" && isSandboxState(req.state) && { state: req.state }),
        labels: req.labels,
      });
      const page = takePage<SandboxView>(
        views,
        {
          listing: "sandboxes",
          filter: { state: req.state, labels: req.labels },
          pageSize: req.pageSize,
          pageToken: req.pageToken,
          keyOf: (v) => ({ createdAtMs: v.createdAt.getTime(), id: v.id }),
          sizeOf: (v) => messages.summary(v).binaryBytes,
        },
        paging,
      );
      const key = JSON.stringify([req.state, req.labels, req.pageSize, req.pageToken]);
      return listAnswers.answer(key, page, (p) => {
        const answer = create(pb.ListSandboxesResponseSchema, {
          sandboxes: p.items.map((v) => messages.summary(v).message),
          nextPageToken: p.nextPageToken,
        });
        Object.freeze(answer.sandboxes);
        return answer;
      });
    },

    async *events(req, ctx) {
      if (req.action !== "" && !isEventAction(req.action)) {
        throw new InvalidArgumentError("action", `unknown action ${quote(req.action)}`);
      }
      const filter = {
        ...(req.id !== "" && { id: req.id }),
        ...(req.action !== "" && isEventAction(req.action) && { action: req.action }),
      };
      for await (const event of sandboxes.events(filter, ctx.signal))
        yield sandboxEventToProto(event);
    },

    listProcesses: (req) => listProcesses(sandboxes, req),

    signalProcess: (req) => signalProcess(sandboxes, req),
  });
}

function requireId(id: string): void {
  if (id === "") throw new InvalidArgumentError("id", "must not be empty");
}

async function* streamOutput(session: ProcessSession) {
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
  signal: AbortSignal,
): Promise<void> {
  let stdinClosed = false;
  for (;;) {
    const next = await iterator.next();
    if (next.done || signal.aborted) break;
    const p = next.value.payload;
    switch (p.case) {
      case "stdin":
        if (stdinClosed) {
          throw new FailedPreconditionError("stdin: already closed by an empty stdin chunk");
        }
        if (p.value.length === 0) {
          stdinClosed = true;
          await session.closeStdin();
        } else {
          await session.writeStdin(p.value);
        }
        break;
      case "resize":
        if (
          p.value.width < 1 ||
          p.value.height < 1 ||
          p.value.width > 65535 ||
          p.value.height > 65535
        ) {
          throw new InvalidArgumentError(
            "resize",
            `width and height must be 1..65535, got ${p.value.width}x${p.value.height}`,
          );
        }
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
  if (!stdinClosed && !signal.aborted) await session.closeStdin();
}

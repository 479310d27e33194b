import { toBinary } from "@bufbuild/protobuf";
import type { SandboxView } from "@vmm/core";
import * as pb from "@vmm/proto";
import { sandboxInfoToProto, sandboxSummaryToProto } from "./convert.js";

/** A List entry built from one view, and its binary size (for page sizing). */
export interface SummaryMessage {
  readonly message: pb.SandboxSummary;
  readonly binaryBytes: number;
}

/**
 * The proto messages of sandbox views, built once per view object. Only a
 * frozen view is cached: SandboxManager hands out the same frozen view while
 * nothing it shows changed and a new one after any change, so a message keyed
 * by a view's identity is never stale, and it goes with its view (WeakMap).
 * A view that is not frozen (another SandboxApi) is converted on every call.
 * The cached messages are shared between calls: nobody may modify them (connect
 * only serializes what a handler returns).
 */
export class ViewMessages {
  readonly #summaries = new WeakMap<SandboxView, SummaryMessage>();
  readonly #infos = new WeakMap<SandboxView, pb.SandboxInfo>();

  /** The List entry of `view` and its encoded size. */
  summary(view: SandboxView): SummaryMessage {
    let s = this.#summaries.get(view);
    if (s === undefined) {
      const message = sandboxSummaryToProto(view);
      s = { message, binaryBytes: toBinary(pb.SandboxSummarySchema, message).length };
      if (Object.isFrozen(view)) this.#summaries.set(view, deepFreeze(s));
    }
    return s;
  }

  /** The Inspect answer for `view`. */
  info(view: SandboxView): pb.SandboxInfo {
    let m = this.#infos.get(view);
    if (m === undefined) {
      m = sandboxInfoToProto(view);
      if (Object.isFrozen(view)) this.#infos.set(view, deepFreeze(m));
    }
    return m;
  }
}

/** Freezes a message and the objects it holds (labels, limits, network), so a shared one cannot change. */
function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (typeof v === "object" && v !== null) deepFreeze(v);
  return Object.freeze(o);
}

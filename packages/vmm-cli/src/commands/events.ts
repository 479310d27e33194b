import { type SandboxEvent, SandboxEventSchema } from "@vmm/proto";
import { EVENT_ACTIONS } from "@vmm/proto/wire";
import { defineCommand, writeChunk } from "../command.js";
import { outputFlag } from "../common-flags.js";
import { formatUnixNanos, parseOutputFormat, renderStreamMessage } from "../output.js";

/** `vmm events`: stream lifecycle events until Ctrl-C. */
export const eventsCommand = defineCommand({
  names: ["events"],
  summary: "Stream sandbox lifecycle events until Ctrl-C",
  usage: "events [--id ID] [--action ACTION] [-o json|yaml]",
  description:
    "One line per event: TIME SANDBOX ACTION [K=V...]. -o json prints one JSON object per line\n" +
    "(NDJSON), -o yaml one YAML document per event. --id is an exact id (it may not exist yet).\n" +
    "Ctrl-C ends the stream with exit code 0.",
  flags: {
    id: { type: "string", value: "ID", description: "only events of this sandbox (exact id)" },
    action: {
      type: "string",
      value: "ACTION",
      description: "only events with this action",
      choices: EVENT_ACTIONS,
    },
    output: outputFlag(["table", "json", "yaml"]),
  },
  args: { positionals: [], rest: "none" },
  async handler(ctx, { values }) {
    const format = parseOutputFormat(values.output, ["table", "json", "yaml"]);
    const stream = ctx
      .clients()
      .sandbox.events({ id: values.id ?? "", action: values.action ?? "" }, { signal: ctx.signal });
    try {
      for await (const ev of stream) {
        const line =
          format === "table"
            ? formatEventLine(ev)
            : renderStreamMessage(format, SandboxEventSchema, ev);
        await writeChunk(ctx.io.stdout, line);
      }
    } catch (err) {
      if (ctx.signal.aborted) return { exitCode: 0 };
      throw err;
    }
    return { exitCode: 0 };
  },
});

/** `2024-05-01T10:00:00.123Z  sb-1  ready  k=v` */
export function formatEventLine(ev: SandboxEvent): string {
  const attrs = Object.keys(ev.attributes)
    .sort()
    .map((k) => `${k}=${ev.attributes[k]}`);
  return `${[formatUnixNanos(ev.timestamp), ev.sandboxId, ev.action, ...attrs].join("  ")}\n`;
}

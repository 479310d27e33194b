import { toJson } from "@bufbuild/protobuf";
import { type SandboxInfo, SandboxInfoSchema } from "@vmm/proto";
import type { Api } from "./api.js";
import { formatLabels, formatUnixSeconds, h, replaceChildren } from "./dom.js";
import { TerminalView } from "./terminal-view.js";

/** Options of `SandboxPanel`. */
export interface SandboxPanelOptions {
  readonly api: Api;
  readonly onError: (action: string, err: unknown) => void;
  /** Called after an action that changes sandboxes or snapshots (the views refresh). */
  readonly onChanged: () => void;
  /** Called when the sandbox was removed (the panel closes). */
  readonly onRemoved: () => void;
}

/**
 * One sandbox: its Inspect answer, lifecycle buttons (pause, resume, checkpoint, stop,
 * remove), a command runner (Run: stdout, stderr and exit code) and a terminal (interactive
 * Exec over the console's WebSocket).
 */
export class SandboxPanel {
  readonly el = h("section", { id: "sandbox-panel" });
  private readonly options: SandboxPanelOptions;
  private readonly id: string;
  private readonly details = h("div", { class: "details" });
  private readonly actions = h("div", { class: "actions" });
  private readonly output = h("pre", {
    id: "run-output",
    class: "run-output",
    "aria-live": "polite",
  });
  private readonly exit = h("div", { id: "run-exit", class: "run-exit" });
  private readonly terminalSlot = h("div", { class: "terminal-slot" });
  private terminal: TerminalView | undefined;
  private run: AbortController | undefined;

  constructor(id: string, options: SandboxPanelOptions) {
    this.id = id;
    this.options = options;
    const command = h("input", {
      id: "run-command",
      name: "command",
      placeholder: "echo hello",
      autocomplete: "off",
      "aria-label": "command",
    });
    replaceChildren(
      this.el,
      h("h2", {}, `Sandbox ${id}`),
      this.actions,
      this.details,
      h(
        "form",
        {
          class: "run",
          onsubmit: (e) => {
            e.preventDefault();
            void this.runCommand(command.value);
          },
        },
        h("label", { for: "run-command" }, "Run (sh -c)"),
        command,
        h("button", { type: "submit" }, "Run"),
      ),
      this.output,
      this.exit,
      this.terminalSlot,
    );
  }

  /** Inspects the sandbox again and redraws details and buttons. */
  async refresh(): Promise<void> {
    try {
      const info = await this.options.api.sandboxes.inspect({ id: this.id });
      this.render(info);
    } catch (err) {
      this.options.onError(`Inspect ${this.id}`, err);
    }
  }

  /** Ends a running command and the terminal (their processes end with them). */
  dispose(): void {
    this.run?.abort();
    this.terminal?.dispose();
  }

  private render(info: SandboxInfo): void {
    const row = (k: string, v: string): HTMLElement[] =>
      v === "" ? [] : [h("dt", {}, k), h("dd", {}, v)];
    const rows = [
      row("State", info.state),
      row("Error", info.error),
      row("Labels", formatLabels(info.labels)),
      row("vCPUs", info.limits ? String(info.limits.vcpus) : ""),
      row("Memory", info.limits ? `${info.limits.memoryMib} MiB` : ""),
      row("IP address", info.network?.ipAddress ?? ""),
      row("Created", formatUnixSeconds(info.createdAt)),
      row("Ready", formatUnixSeconds(info.readyAt)),
      row("Paused", formatUnixSeconds(info.pausedAt)),
      row("Expires", formatUnixSeconds(info.expiresAt)),
      row("Created from", info.createdFrom),
    ].flat();
    replaceChildren(
      this.details,
      h("dl", { id: "inspect", "data-state": info.state }, ...rows),
      h(
        "details",
        {},
        h("summary", {}, "Inspect (JSON)"),
        h("pre", {}, JSON.stringify(toJson(SandboxInfoSchema, info), null, 2)),
      ),
    );
    const button = (label: string, action: () => Promise<unknown>, enabled = true) =>
      h(
        "button",
        {
          type: "button",
          disabled: !enabled,
          onclick: () => void this.act(label, action),
        },
        label,
      );
    const { sandboxes, snapshots } = this.options.api;
    const id = this.id;
    const live = info.state === "ready" || info.state === "running";
    replaceChildren(
      this.actions,
      button("Terminal", async () => this.openTerminal(), live),
      info.state === "paused"
        ? button("Resume", () => sandboxes.resume({ id }))
        : button("Pause", () => sandboxes.pause({ id }), live),
      button(
        "Checkpoint",
        async () => {
          const name = prompt("Snapshot name (empty: generated)", "");
          if (name !== null) await snapshots.checkpoint({ sandboxId: id, name });
        },
        live || info.state === "paused",
      ),
      button("Stop", () => sandboxes.stop({ id }), live || info.state === "paused"),
      button("Remove", async () => {
        if (!confirm(`Remove sandbox ${id}? Its disk is deleted.`)) return;
        await sandboxes.remove({ id, force: true });
        this.options.onRemoved();
      }),
    );
  }

  private async act(label: string, action: () => Promise<unknown>): Promise<void> {
    try {
      await action();
      this.options.onChanged();
      if (label !== "Remove") await this.refresh();
    } catch (err) {
      this.options.onError(`${label} ${this.id}`, err);
    }
  }

  private async runCommand(line: string): Promise<void> {
    if (line.trim() === "") return;
    this.run?.abort();
    const run = new AbortController();
    this.run = run;
    replaceChildren(this.output);
    this.exit.textContent = "running…";
    this.exit.dataset.exitCode = "";
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    try {
      for await (const out of this.options.api.sandboxes.run(
        { id: this.id, cmd: ["sh", "-c", line] },
        { signal: run.signal },
      )) {
        if (out.done) {
          this.exit.textContent = `exit code ${out.exitCode}`;
          this.exit.dataset.exitCode = String(out.exitCode);
          continue;
        }
        const stream = out.stream === "stderr" ? "stderr" : "stdout";
        const text = decoders[stream].decode(out.data, { stream: true });
        this.output.append(h("span", { class: stream }, text));
      }
    } catch (err) {
      if (run.signal.aborted) return;
      this.exit.textContent = "failed";
      this.options.onError(`Run in ${this.id}`, err);
    }
  }

  private openTerminal(): void {
    this.terminal?.dispose();
    this.terminal = new TerminalView(this.id, this.options.onError);
    replaceChildren(
      this.terminalSlot,
      this.terminal.el,
      h("button", { type: "button", onclick: () => this.closeTerminal() }, "Close terminal"),
    );
    this.terminal.attach();
  }

  private closeTerminal(): void {
    this.terminal?.dispose();
    this.terminal = undefined;
    replaceChildren(this.terminalSlot);
  }
}

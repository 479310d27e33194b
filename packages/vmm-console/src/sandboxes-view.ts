import type { SandboxSummary } from "@vmm/proto";
import { type Api, isCanceled, isUnauthenticated } from "./api.js";
import { formatLabels, formatUnixSeconds, h, replaceChildren } from "./dom.js";

/** How the table learns about changes: an Events stream, or List polling while it is down. */
export type LiveMode = "live" | "polling" | "offline";

/** Options of `SandboxesView`. */
export interface SandboxesViewOptions {
  readonly api: Api;
  /** Called when a row is chosen. */
  readonly onSelect: (id: string) => void;
  /** Called after every refresh with the current list (the open panel updates from it). */
  readonly onChange: (sandboxes: readonly SandboxSummary[]) => void;
  /** Called with an error that needs the user (a missing or wrong token, a failing List). */
  readonly onError: (action: string, err: unknown) => void;
  /** List interval while the Events stream is down, ms. Default 3000. */
  readonly pollMs?: number;
}

/**
 * The sandboxes table, kept current by the server-streamed Events call: each event triggers a
 * (coalesced) List. When the stream fails, the table polls List and retries the stream.
 */
export class SandboxesView {
  readonly el: HTMLElement;
  private readonly body = h("tbody");
  private readonly mode = h("span", { id: "live-mode", class: "badge" }, "offline");
  private sandboxes: readonly SandboxSummary[] = [];
  private selected = "";
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private readonly options: SandboxesViewOptions;

  constructor(options: SandboxesViewOptions) {
    this.options = options;
    this.el = h(
      "section",
      { id: "sandboxes" },
      h("h2", {}, "Sandboxes ", this.mode),
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["ID", "State", "Labels", "IP address", "Created"].map((c) => h("th", {}, c)),
          ),
        ),
        this.body,
      ),
    );
  }

  /** Marks `id`'s row as the open one. */
  select(id: string): void {
    this.selected = id;
    this.render();
  }

  /** Lists every page now; concurrent calls coalesce into one more List. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.refreshAgain = false;
          const all: SandboxSummary[] = [];
          let pageToken = "";
          do {
            const page = await this.options.api.sandboxes.list({ pageToken });
            all.push(...page.sandboxes);
            pageToken = page.nextPageToken;
          } while (pageToken !== "");
          this.sandboxes = all;
          this.render();
          this.options.onChange(all);
        } while (this.refreshAgain);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Follows Events until `signal` aborts, polling List while the stream is down. */
  async watch(signal: AbortSignal): Promise<void> {
    const pollMs = this.options.pollMs ?? 3000;
    while (!signal.aborted) {
      try {
        const stream = this.options.api.sandboxes.events({}, { signal });
        // The first List runs while the stream opens; events from then on trigger new ones.
        const first = this.refresh();
        this.setMode("live");
        for await (const _event of stream) {
          this.refresh().catch((err: unknown) => this.options.onError("Listing sandboxes", err));
        }
        await first;
      } catch (err) {
        if (signal.aborted || isCanceled(err)) return;
        this.setMode("polling");
        if (isUnauthenticated(err)) this.options.onError("Watching sandboxes", err);
      }
      // Stream down (or ended by the daemon): poll once, wait, then try the stream again.
      try {
        await this.refresh();
      } catch (err) {
        this.setMode("offline");
        this.options.onError("Listing sandboxes", err);
      }
      await sleep(pollMs, signal);
    }
  }

  private setMode(mode: LiveMode): void {
    this.mode.textContent = mode;
    this.mode.dataset.mode = mode;
  }

  private render(): void {
    if (this.sandboxes.length === 0) {
      replaceChildren(this.body, h("tr", {}, h("td", { colspan: "5", class: "empty" }, "none")));
      return;
    }
    replaceChildren(
      this.body,
      ...this.sandboxes.map((s) =>
        h(
          "tr",
          {
            "data-id": s.id,
            "data-state": s.state,
            class: s.id === this.selected ? "selected" : undefined,
            onclick: () => this.options.onSelect(s.id),
          },
          h("td", {}, h("button", { type: "button", class: "link" }, s.id)),
          h("td", {}, h("span", { class: `state state-${s.state}` }, s.state)),
          h("td", {}, formatLabels(s.labels)),
          h("td", {}, s.ipAddress),
          h("td", {}, formatUnixSeconds(s.createdAt)),
        ),
      ),
    );
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

// The web console end to end in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real daemon over fc-sim (console-test-server.ts). Screenshots go
// to test-results/console/ at the repository root (git-ignored).
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type OciRegistry,
  REGISTRY_BIN,
  startOciRegistry,
  tarLayer,
} from "../../../test/oci-registry.js";
import { type ConsoleServer, startConsoleServer } from "./console-test-server.js";

const CHROMIUM = process.env.VMM_CHROMIUM ?? "/usr/bin/chromium";
const REQUIRED = process.env.VMM_CONSOLE_BROWSER === "1";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const SHOTS = resolve(import.meta.dirname, "../../../test-results/console");

const title = HAVE_CHROMIUM
  ? "web console in headless Chromium"
  : `web console in headless Chromium (SKIPPED: no browser at ${CHROMIUM}; install Debian's chromium or set VMM_CHROMIUM; VMM_CONSOLE_BROWSER=1 turns this skip into a failure)`;

if (!HAVE_CHROMIUM && !REQUIRED) process.stderr.write(`console-browser.spec: ${title}\n`);

it.runIf(REQUIRED && !HAVE_CHROMIUM)("finds chromium (VMM_CONSOLE_BROWSER=1 requires it)", () => {
  expect.fail(`VMM_CONSOLE_BROWSER=1 but there is no browser at ${CHROMIUM}`);
});

describe.skipIf(!HAVE_CHROMIUM)(title, () => {
  let server: ConsoleServer;
  let browser: Browser;
  let page: Page;
  let registry: OciRegistry | undefined;
  const pageErrors: string[] = [];
  const id = `console-e2e-${process.pid}`;
  const restoredId = `${id}-restored`;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // A registry for the image suggestions (when docker-registry is installed).
    if (existsSync(REGISTRY_BIN)) registry = await startOciRegistry();
    server = await startConsoleServer({
      env: registry ? { VMM_IMAGES_INSECURE_REGISTRIES: registry.host } : {},
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // The test runs as root here, where Chromium's own sandbox cannot start.
      args: ["--no-sandbox"],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    // confirm() → OK; prompt() → a known id for Restore, the default (generated) otherwise.
    page.on("dialog", (d) => {
      if (d.type() !== "prompt") void d.accept();
      else void d.accept(d.message().startsWith("Restore") ? restoredId : "");
    });
  }, 120_000);

  afterAll(async () => {
    // Each step runs even when an earlier one failed; the daemon's dispose stops sandboxes.
    if (page && !page.isClosed()) {
      await page.screenshot({ path: resolve(SHOTS, "last.png"), fullPage: true }).catch(() => {});
    }
    await browser?.close().catch(() => {});
    await server?.[Symbol.asyncDispose]();
    await registry?.stop();
  }, 120_000);

  it("asks for the token, then shows the sandbox list live over Events", async () => {
    await page.goto(server.url);
    // The daemon wants a token: the first List fails with Unauthenticated, the form opens.
    await expect.poll(() => page.locator("#error .code").textContent()).toBe("unauthenticated");
    await page.locator("#token").fill(server.token);
    await page.locator("#token-form button[type=submit]").click();
    await expect
      .poll(() => page.locator("#live-mode").textContent(), { timeout: 15_000 })
      .toBe("live");
    expect(await page.locator("#error").isHidden()).toBe(true);
  });

  it("shows the API's error code and message for a rejected Create", async () => {
    await page.locator("#create-id").fill("not a valid id!");
    await page.locator("#create button[type=submit]").click();
    await expect.poll(() => page.locator("#error .code").textContent()).toBe("invalid_argument");
    expect(await page.locator("#error .message").textContent()).toMatch(/^id: /);
    await page.locator("#error .dismiss").click();
  });

  it.skipIf(!existsSync(REGISTRY_BIN))(
    "suggests the pulled images in the Create form's image field",
    async () => {
      const reference = `${registry!.host}/console/app:v1`;
      await registry!.pushImage("console/app", "v1", { layers: [tarLayer({ hello: "world" })] });
      for await (const _ of server.images.pullImage({ reference }));
      await page.locator("#create-image").focus();
      await expect
        .poll(
          () =>
            page
              .locator("#create-image-list option")
              .evaluateAll((os) => os.map((o) => o.getAttribute("value"))),
          {
            timeout: 10_000,
          },
        )
        .toEqual([reference]);
      await page.locator("#create-id").focus();
    },
  );

  it("creates a sandbox, which turns ready in the table through Events", async () => {
    await page.locator("#create-id").fill(id);
    await page.locator("#create-labels").fill("suite=console, owner=e2e");
    await page.locator("#create button[type=submit]").click();
    const row = page.locator(`#sandboxes tr[data-id="${id}"]`);
    await row.waitFor();
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 30_000 }).toBe("ready");
    expect(await row.textContent()).toContain("suite=console, owner=e2e");
    const info = await server.sandboxes.inspect({ id });
    expect(info.labels).toEqual({ suite: "console", owner: "e2e" });
    await expect.poll(() => page.locator("#inspect").getAttribute("data-state")).toBe("ready");
  });

  it("runs `echo hi` and shows its output and exit code", async () => {
    await page.locator("#run-command").fill("echo hi; echo oops >&2");
    await page.locator("form.run button[type=submit]").click();
    await expect.poll(() => page.locator("#run-exit").getAttribute("data-exit-code")).toBe("0");
    expect(await page.locator("#run-output .stdout").allTextContents()).toEqual(["hi\n"]);
    expect(await page.locator("#run-output .stderr").allTextContents()).toEqual(["oops\n"]);
    await page.screenshot({ path: resolve(SHOTS, "run.png"), fullPage: true });
  });

  it("types into the terminal: an interactive shell over the WebSocket", async () => {
    await page.getByRole("button", { name: "Terminal", exact: true }).click();
    const status = page.locator(".terminal-status");
    await expect.poll(() => status.textContent(), { timeout: 15_000 }).toBe("running");
    await page.locator(".terminal-screen").click();
    await page.keyboard.type("echo typed-$((1+2))");
    await page.keyboard.press("Enter");
    const rows = page.locator(".terminal .xterm-rows");
    // The echoed command line holds "typed-$((1+2))"; only the shell's answer holds "typed-3".
    await expect.poll(() => rows.textContent(), { timeout: 15_000 }).toContain("typed-3");
    await page.screenshot({ path: resolve(SHOTS, "terminal.png"), fullPage: true });
    await page.keyboard.type("exit 7");
    await page.keyboard.press("Enter");
    await expect.poll(() => status.textContent(), { timeout: 15_000 }).toBe("exited (exit code 7)");
  });

  it("pauses and resumes the sandbox", async () => {
    const row = page.locator(`#sandboxes tr[data-id="${id}"]`);
    await page.getByRole("button", { name: "Pause", exact: true }).click();
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 15_000 }).toBe("paused");
    await page.getByRole("button", { name: "Resume", exact: true }).click();
    await expect.poll(() => row.getAttribute("data-state"), { timeout: 15_000 }).toBe("ready");
  });

  it("checkpoints, restores into a new sandbox, and deletes the snapshot", async () => {
    await page.getByRole("button", { name: "Checkpoint", exact: true }).click();
    const snapshot = page.locator("#snapshots tbody tr[data-id]");
    await snapshot.waitFor({ timeout: 30_000 });
    expect(await snapshot.locator("td").nth(2).textContent()).toBe(id);
    await snapshot.getByRole("button", { name: "Restore" }).click();
    const restored = page.locator(`#sandboxes tr[data-id="${restoredId}"]`);
    await expect.poll(() => restored.getAttribute("data-state"), { timeout: 30_000 }).toBe("ready");
    expect(await page.locator("#sandbox-panel h2").textContent()).toBe(`Sandbox ${restoredId}`);
    await page.getByRole("button", { name: "Remove", exact: true }).click();
    await restored.waitFor({ state: "detached", timeout: 30_000 });
    await snapshot.getByRole("button", { name: "Delete" }).click();
    await snapshot.waitFor({ state: "detached" });
    const left = await server.snapshots.listSnapshots({});
    expect(left.snapshots).toEqual([]);
  });

  it("removes the sandbox, which leaves the table and the daemon", async () => {
    await page.locator(`#sandboxes tr[data-id="${id}"] button`).click();
    await page.getByRole("button", { name: "Remove", exact: true }).click();
    await page
      .locator(`#sandboxes tr[data-id="${id}"]`)
      .waitFor({ state: "detached", timeout: 30_000 });
    const list = await server.sandboxes.list({});
    expect(list.sandboxes.map((s) => s.id)).not.toContain(id);
    await page.screenshot({ path: resolve(SHOTS, "removed.png"), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});

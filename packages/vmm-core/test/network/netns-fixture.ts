/**
 * Test fixture: a private namespace playing "the host", and helpers that run
 * commands and TCP probes inside namespaces. Everything it makes is named
 * `vmmt-<random>-…` and removed by `dispose()`, so nothing touches the root
 * namespace.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export async function sh(argv: readonly string[], stdin?: string): Promise<string> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("empty argv");
  if (stdin === undefined) {
    const { stdout } = await execFileAsync(file, args, { timeout: 15_000, encoding: "utf8" });
    return stdout;
  }
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: 15_000, encoding: "utf8" },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${argv.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    );
    child.stdin?.end(stdin);
  });
}

export async function listNetns(): Promise<string[]> {
  const out = await sh(["ip", "-j", "netns", "list"]);
  return out.trim() === "" ? [] : (JSON.parse(out) as { name: string }[]).map((n) => n.name);
}

export async function listLinks(netns: string): Promise<string[]> {
  const out = await sh(["ip", "-n", netns, "-j", "link", "show"]);
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

export async function listTables(netns: string): Promise<string[]> {
  const out = await sh(["ip", "netns", "exec", netns, "nft", "list", "tables"]);
  return out.split("\n").filter((l) => l.trim() !== "");
}

export interface TestHost {
  /** Prefix for everything of this test, e.g. `vmmt-3fa9-`; pass as `namePrefix`. */
  readonly prefix: string;
  /** The namespace playing the host; pass as `hostNetns`. */
  readonly hostNetns: string;
  /** Creates an extra namespace `<prefix><suffix>` with lo up. */
  addNetns(suffix: string): Promise<string>;
  /** Our namespaces still present (ideally none after dispose). */
  leftovers(): Promise<string[]>;
  /** Kills servers, deletes every namespace named with the prefix. */
  dispose(): Promise<void>;
  /** Starts a TCP server in `netns` answering `<label> <peer address>\n` to each connection. */
  serve(netns: string, host: string, port: number, label: string): Promise<void>;
}

const SERVER = `
const net = require("node:net");
const [host, port, label] = process.argv.slice(1);
net.createServer((s) => { s.end(label + " " + s.remoteAddress + "\\n"); s.on("error", () => {}); })
  .listen(Number(port), host, () => console.log("listening"));
`;

const CLIENT = `
const net = require("node:net");
const [host, port, ms] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: Number(ms) });
let data = "";
s.on("data", (d) => { data += d; });
s.on("end", () => { process.stdout.write(data); process.exit(0); });
s.on("timeout", () => { console.error("timeout"); process.exit(2); });
s.on("error", (e) => { console.error(e.code); process.exit(3); });
`;

/**
 * Connects from `netns` to host:port; resolves to the server's answer, or to
 * `null` when the connection fails or times out within `timeoutMs`.
 */
export async function probe(
  netns: string,
  host: string,
  port: number,
  timeoutMs = 1500,
): Promise<string | null> {
  try {
    const out = await sh([
      "ip",
      "netns",
      "exec",
      netns,
      process.execPath,
      "-e",
      CLIENT,
      host,
      String(port),
      String(timeoutMs),
    ]);
    return out.trim();
  } catch {
    return null;
  }
}

export async function createTestHost(): Promise<TestHost> {
  const prefix = `vmmt-${randomBytes(2).toString("hex")}-`;
  const servers: ChildProcess[] = [];
  const addNetns = async (suffix: string): Promise<string> => {
    const name = `${prefix}${suffix}`;
    await sh(["ip", "netns", "add", name]);
    await sh(["ip", "-n", name, "link", "set", "lo", "up"]);
    return name;
  };
  const hostNetns = await addNetns("host");
  const leftovers = async (): Promise<string[]> =>
    (await listNetns()).filter((n) => n.startsWith(prefix));
  return {
    prefix,
    hostNetns,
    addNetns,
    leftovers,
    async serve(netns, host, port, label) {
      const child = spawn(
        "ip",
        ["netns", "exec", netns, process.execPath, "-e", SERVER, host, String(port), label],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      servers.push(child);
      const [chunk] = (await Promise.race([
        once(child.stdout!, "data"),
        once(child, "exit").then(() => {
          throw new Error(`server in ${netns} on ${host}:${port} exited`);
        }),
      ])) as [Buffer];
      if (!chunk.toString().includes("listening")) throw new Error(`server said ${chunk}`);
    },
    async dispose() {
      for (const child of servers) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGKILL");
          await once(child, "exit");
        }
      }
      for (const name of await leftovers()) {
        await sh(["ip", "netns", "del", name]).catch(() => {});
      }
    },
  };
}

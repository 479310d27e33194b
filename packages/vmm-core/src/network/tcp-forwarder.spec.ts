import { once } from "node:events";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "./logger.js";
import { openTcpForwarder, type TcpForwarder } from "./tcp-forwarder.js";

/** An echo server on loopback (ephemeral port). */
async function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return server;
}

const portOf = (address: string) => Number(address.split(":").at(-1));

/** Sends `text`, resolves with what comes back before the peer closes (or `ms` pass). */
function exchange(address: string, text: string, ms = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(portOf(address), "127.0.0.1");
    let got = "";
    const t = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, ms);
    s.on("data", (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        clearTimeout(t);
        s.end();
        resolve(got);
      }
    });
    s.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(t);
      resolve(got);
    });
    s.write(text);
  });
}

describe("openTcpForwarder", () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const open = async (
    o: Partial<Parameters<typeof openTcpForwarder>[0]> & { targetPort: number },
  ) => {
    const f = await openTcpForwarder({
      host: "127.0.0.1",
      port: 0,
      targetHost: "127.0.0.1",
      logger: silentLogger,
      ...o,
    });
    cleanup.push(() => f.close());
    return f;
  };

  it("relays both ways, 1 MiB intact, after beforeConnect", async () => {
    const server = await echoServer();
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    let prepared = 0;
    const f = await open({
      targetPort: (server.address() as net.AddressInfo).port,
      beforeConnect: async () => {
        prepared++;
      },
    });
    expect(f.address).toMatch(/^127\.0\.0\.1:\d+$/);
    const big = "x".repeat(1 << 20);
    expect(await exchange(f.address, big)).toBe(big);
    expect(prepared).toBe(1);
  });

  it("closes the client when beforeConnect rejects, and when the target refuses", async () => {
    const server = await echoServer();
    const port = (server.address() as net.AddressInfo).port;
    const refusing = await open({
      targetPort: port,
      beforeConnect: () => Promise.reject(new Error("paused")),
    });
    expect(await exchange(refusing.address, "hi")).toBe("");
    await new Promise<void>((r) => server.close(() => r())); // nothing listens there now
    const dead = await open({ targetPort: port });
    await expect(exchange(dead.address, "hi")).rejects.toThrow(/ECONNRESET/);
  });

  it("cuts live connections on close and frees the port; a taken port rejects", async () => {
    const server = await echoServer();
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const f: TcpForwarder = await open({ targetPort: (server.address() as net.AddressInfo).port });
    const client = net.connect(portOf(f.address), "127.0.0.1");
    const closed = new Promise<void>((r) => client.once("close", () => r()));
    client.on("error", () => {});
    await new Promise<void>((r) => client.once("connect", () => r()));
    await f.close();
    await closed;
    await expect(
      open({ targetPort: 1, port: (server.address() as net.AddressInfo).port }),
    ).rejects.toThrow(/EADDRINUSE/);
  });

  it("connect() dials the target after beforeConnect; close() cuts its sockets and refuses more", async () => {
    const server = await echoServer();
    const port = (server.address() as net.AddressInfo).port;
    let prepared = 0;
    const f = await open({
      targetPort: port,
      beforeConnect: async () => {
        prepared++;
      },
    });
    const s = await f.connect();
    expect(prepared).toBe(1);
    s.write("ping");
    const [echo] = await once(s, "data");
    expect(String(echo)).toBe("ping");
    const cut = new Promise<void>((r) => s.once("close", () => r()));
    await f.close();
    await cut;
    await expect(f.connect()).rejects.toMatchObject({ code: "ECONNABORTED" });
    await new Promise<void>((r) => server.close(() => r()));
    const dead = await open({ targetPort: port });
    await expect(dead.connect()).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const paused = await open({
      targetPort: port,
      beforeConnect: () => Promise.reject(new Error("paused")),
    });
    await expect(paused.connect()).rejects.toThrow("paused");
  });
});

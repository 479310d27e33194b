import { unlinkSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";

/** First host-side port Firecracker hands out in `OK <port>` (1 << 30). */
export const firstHostPort = 1073741824;
const maxHandshakeBytes = 64;

type Link = { host: net.Socket; guest: net.Socket };

/**
 * The vsock device's host side: a Unix socket at `uds_path` speaking Firecracker's
 * `CONNECT <port>\n` / `OK <hostport>\n` handshake, spliced to the guest's
 * `<unixDir>/<port>.sock`. Connections accepted while the VM does not run wait
 * (unread) until it runs; established links stop moving bytes while paused.
 */
export class VsockDevice {
  readonly udsPath: string;
  private server: net.Server | undefined;
  private readonly waiting: net.Socket[] = [];
  private readonly links = new Set<Link>();
  private running = false;
  private resetPending = false;
  private nextHostPort = firstHostPort;
  private readonly guestDir: () => string | undefined;

  /** @param guestDir returns the guest's listener dir, or undefined when no guest listens. */
  constructor(udsPath: string, guestDir: () => string | undefined) {
    this.udsPath = udsPath;
    this.guestDir = guestDir;
  }

  /** Binds `uds_path` (must not exist). Rejects with the bind error (e.g. EADDRINUSE). */
  async bind(): Promise<void> {
    const server = net.createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.udsPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** Closes the listener and every connection; unlinks the socket when `unlink` (device replaced). */
  close(unlink: boolean): void {
    this.server?.close();
    this.server = undefined;
    for (const s of this.waiting.splice(0)) s.destroy();
    for (const l of this.links) this.drop(l);
    if (unlink) {
      try {
        unlinkSync(this.udsPath);
      } catch {
        // already gone
      }
    }
  }

  /** The VM runs (`true`) or not (not started / paused). */
  setRunning(running: boolean): void {
    this.running = running;
    if (running) {
      if (this.resetPending) {
        // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the guest drops every established connection.
        this.resetPending = false;
        for (const l of this.links) this.drop(l);
      }
      for (const l of this.links) {
        l.host.pipe(l.guest);
        l.guest.pipe(l.host);
      }
      for (const s of this.waiting.splice(0)) this.handshake(s);
    } else {
      for (const l of this.links) {
        l.host.unpipe(l.guest);
        l.guest.unpipe(l.host);
        l.host.pause();
        l.guest.pause();
      }
    }
  }

  /** Snapshot create: queue a transport reset delivered when the VM next runs. */
  queueTransportReset(): void {
    this.resetPending = true;
  }

  private accept(s: net.Socket): void {
    s.on("error", () => {});
    s.pause();
    if (this.running) this.handshake(s);
    else {
      this.waiting.push(s);
      s.once("close", () => {
        const i = this.waiting.indexOf(s);
        if (i >= 0) this.waiting.splice(i, 1);
      });
    }
  }

  private handshake(host: net.Socket): void {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(10);
      if (nl < 0) {
        if (buf.length > maxHandshakeBytes) host.destroy();
        return;
      }
      host.off("data", onData);
      host.pause();
      const line = buf.subarray(0, nl).toString("latin1").trim();
      const rest = buf.subarray(nl + 1);
      const m = /^connect\s+(\d+)$/i.exec(line);
      const dir = this.guestDir();
      if (!m || dir === undefined) {
        host.end(); // nothing listens on that guest port: EOF without OK
        return;
      }
      this.connectGuest(host, join(dir, `${m[1]}.sock`), rest);
    };
    host.on("data", onData);
    host.resume();
  }

  private connectGuest(host: net.Socket, path: string, early: Buffer): void {
    const guest = net.connect(path);
    guest.once("error", () => {
      host.end();
      guest.destroy();
    });
    guest.once("connect", () => {
      guest.removeAllListeners("error");
      guest.on("error", () => {});
      if (host.destroyed) {
        guest.destroy();
        return;
      }
      const link: Link = { host, guest };
      this.links.add(link);
      // The host side going away tears the link down; the guest closing its end only
      // ends the host stream after everything already sent was delivered (EOF after
      // the data, as a guest close does on Firecracker), never discarding it.
      host.once("close", () => this.drop(link));
      guest.once("close", () => {
        if (!this.links.delete(link)) return;
        if (!host.destroyed) host.end();
      });
      host.write(`OK ${this.nextHostPort++}\n`);
      if (early.length > 0) guest.write(early);
      if (this.running) {
        host.pipe(guest);
        guest.pipe(host);
      } else guest.pause();
    });
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.host.destroy();
    link.guest.destroy();
  }
}

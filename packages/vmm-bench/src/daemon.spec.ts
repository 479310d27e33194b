import { describe, expect, it } from "vitest";
import { tcpAddressFromLog } from "./daemon.js";

describe("tcpAddressFromLog", () => {
  it("reads the TCP listener from the daemon's JSON serving line", () => {
    const log = [
      '{"level":30,"msg":"recovered","sandboxes":3}',
      '{"level":30,"listeners":["unix:/tmp/vb-x/s.sock","tcp:127.0.0.1:38211"],"version":"0.1.0","msg":"serving"}',
      "",
    ].join("\n");
    expect(tcpAddressFromLog(log)).toBe("127.0.0.1:38211");
  });

  it("is undefined before the line is logged, or without a TCP listener", () => {
    expect(tcpAddressFromLog('{"level":30,"msg":"starting"}\n')).toBeUndefined();
    expect(
      tcpAddressFromLog('{"listeners":["unix:/tmp/s.sock"],"msg":"serving"}\n'),
    ).toBeUndefined();
    expect(tcpAddressFromLog('{"msg":"serving"')).toBeUndefined(); // line cut mid-write
  });
});

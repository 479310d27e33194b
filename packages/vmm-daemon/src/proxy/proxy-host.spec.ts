import { describe, expect, it } from "vitest";
import { parseProxyHost, proxyOrigin } from "./proxy-host.js";

describe("parseProxyHost", () => {
  it.each([
    ["8080-sb-1.sandbox.test", { id: "sb-1", guestPort: 8080 }],
    ["8080-sb-1.sandbox.test:8088", { id: "sb-1", guestPort: 8080 }],
    ["8080-SB-1.Sandbox.Test.", { id: "sb-1", guestPort: 8080 }],
    ["1-a.sandbox.test", { id: "a", guestPort: 1 }],
    ["65535-a-b-c.sandbox.test", { id: "a-b-c", guestPort: 65535 }],
  ])("routes %s", (host, route) => {
    expect(parseProxyHost(host, "sandbox.test")).toEqual(route);
  });

  it.each([
    [undefined],
    ["sandbox.test"],
    ["8080-sb.other.test"],
    ["8080-sb.xsandbox.test"],
    ["sb.sandbox.test"],
    ["0-sb.sandbox.test"],
    ["65536-sb.sandbox.test"],
    ["8080-.sandbox.test"],
    ["8080--sb.sandbox.test"],
    ["8080-sb.x.sandbox.test"],
    ["8080-sb_1.sandbox.test"],
  ])("refuses %s", (host) => {
    expect(parseProxyHost(host, "sandbox.test")).toBeUndefined();
  });
});

describe("proxyOrigin", () => {
  const route = { id: "sb-1", guestPort: 3000 };
  it("leaves out the scheme's default port", () => {
    expect(proxyOrigin({ scheme: "https", domain: "s.example.com", port: 443 }, route)).toBe(
      "https://3000-sb-1.s.example.com",
    );
    expect(proxyOrigin({ scheme: "http", domain: "s.example.com", port: 80 }, route)).toBe(
      "http://3000-sb-1.s.example.com",
    );
    expect(proxyOrigin({ scheme: "http", domain: "s.example.com", port: 8088 }, route)).toBe(
      "http://3000-sb-1.s.example.com:8088",
    );
  });
});

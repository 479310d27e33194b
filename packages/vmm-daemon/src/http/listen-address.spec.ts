import { describe, expect, it } from "vitest";
import { isLoopbackHost, parseListenAddress } from "./listen-address.js";

describe("parseListenAddress", () => {
  it.for([
    ["127.0.0.1:9464", { host: "127.0.0.1", port: 9464 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    ["localhost:80", { host: "localhost", port: 80 }],
    ["0.0.0.0:9464", { host: "0.0.0.0", port: 9464 }],
  ] as const)("%s", ([text, want]) => {
    expect(parseListenAddress(text)).toEqual(want);
  });

  it.for(["9464", ":9464", "::1:9464", "[nothost]:1", "host:65536", "host:", ""])(
    "rejects %j",
    (text) => {
      expect(parseListenAddress(text)).toBeUndefined();
    },
  );
});

describe("isLoopbackHost", () => {
  it.for([
    ["localhost", true],
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.1", false],
    ["example.com", false],
  ] as const)("%s → %s", ([host, want]) => {
    expect(isLoopbackHost(host)).toBe(want);
  });
});

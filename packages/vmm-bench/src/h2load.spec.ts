import { describe, expect, it } from "vitest";
import { H2loadOutputError, h2loadArgs, parseH2loadOutput } from "./h2load.js";

// Printed by h2load nghttp2/1.52.0 (Debian 12 nghttp2-client): 200 calls answered 200,
// then 20 calls answered 401.
const OK = `starting benchmark...
spawning thread #0: 2 total client(s). 200 total requests
Application protocol: h2c
progress: 10% done
progress: 20% done
progress: 30% done
progress: 40% done
progress: 50% done
progress: 60% done
progress: 70% done
progress: 80% done
progress: 90% done
progress: 100% done

finished in 137.63ms, 1453.22 req/s, 44.58KB/s
requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 6.13KB (6282) total, 446B (446) headers (space savings 94.81%), 400B (400) data
                     min         max         mean         sd        +/- sd
time for request:      573us     38.40ms      5.09ms      6.87ms    96.00%
time for connect:      415us      5.60ms      3.01ms      3.67ms   100.00%
time to 1st byte:    30.55ms     32.36ms     31.46ms      1.28ms   100.00%
req/s           :     761.76      763.33      762.54        1.11   100.00%
`;
const ALL_401 = `starting benchmark...
spawning thread #0: 1 total client(s). 20 total requests
Application protocol: h2c
progress: 10% done
progress: 20% done
progress: 30% done
progress: 40% done
progress: 50% done
progress: 60% done
progress: 70% done
progress: 80% done
progress: 90% done
progress: 100% done

finished in 20.60ms, 970.78 req/s, 31.47KB/s
requests: 20 total, 20 started, 20 done, 0 succeeded, 20 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 20 4xx, 0 5xx
traffic: 664B (664) total, 66B (66) headers (space savings 92.33%), 40B (40) data
                     min         max         mean         sd        +/- sd
time for request:      467us      7.54ms      2.79ms      2.60ms    80.00%
time for connect:     2.06ms      2.06ms      2.06ms         0us   100.00%
time to 1st byte:     5.39ms      5.39ms      5.39ms         0us   100.00%
req/s           :    1213.92     1213.92     1213.92        0.00   100.00%
`;

describe("parseH2loadOutput", () => {
  it("reads rate, counts, status classes and request times (us and ms) of a clean run", () => {
    expect(parseH2loadOutput(OK)).toEqual({
      durationMs: 137.63,
      reqPerSec: 1453.22,
      requests: {
        total: 200,
        started: 200,
        done: 200,
        succeeded: 200,
        failed: 0,
        errored: 0,
        timeout: 0,
      },
      status: { "2xx": 200, "3xx": 0, "4xx": 0, "5xx": 0 },
      requestTimeMs: { min: 0.573, max: 38.4, mean: 5.09, sd: 6.87 },
    });
  });

  it("counts non-2xx answers as failed (a wrong token is not throughput)", () => {
    const r = parseH2loadOutput(ALL_401);
    expect(r.requests).toMatchObject({ done: 20, succeeded: 0, failed: 20 });
    expect(r.status).toEqual({ "2xx": 0, "3xx": 0, "4xx": 20, "5xx": 0 });
  });

  it("converts a run that took seconds", () => {
    const r = parseH2loadOutput(OK.replace("finished in 137.63ms", "finished in 9.87s"));
    expect(r.durationMs).toBeCloseTo(9870, 6);
  });

  it("refuses output without a summary (h2load failed or changed its format)", () => {
    const truncated = OK.slice(0, OK.indexOf("requests:"));
    expect(() => parseH2loadOutput(truncated)).toThrow(H2loadOutputError);
    expect(() => parseH2loadOutput(truncated)).toThrow(/"requests:" line/);
    expect(() => parseH2loadOutput("")).toThrow(/"finished in" line/);
    expect(() => parseH2loadOutput(OK.replace("573us", "573ns"))).toThrow(/duration in "573ns"/);
  });
});

describe("h2loadArgs", () => {
  it("passes counts, one thread by default, the body file and each header", () => {
    expect(
      h2loadArgs({
        url: "http://127.0.0.1:1/sandbox.v1.SandboxService/List",
        bodyFile: "/tmp/b.json",
        headers: ["content-type: application/json", "authorization: Bearer t"],
        requests: 50000,
        clients: 8,
        maxStreams: 16,
      }),
    ).toEqual([
      ...["-n", "50000", "-c", "8", "-m", "16", "-t", "1", "-d", "/tmp/b.json"],
      ...["-H", "content-type: application/json", "-H", "authorization: Bearer t"],
      "http://127.0.0.1:1/sandbox.v1.SandboxService/List",
    ]);
  });
});

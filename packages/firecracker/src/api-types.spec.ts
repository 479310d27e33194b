import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, expectTypeOf, it } from "vitest";
import { parse } from "yaml";
import * as t from "./api-types.js";

// Unmodified copy of shared/firecracker/firecracker-v1.14.yaml (Apache-2.0, see spec/LICENSE-firecracker).
const specPath = resolve(import.meta.dirname, "../spec/firecracker-v1.14.yaml");
const spec = parse(readFileSync(specPath, "utf8")) as {
  definitions: Record<string, { properties?: Record<string, unknown>; required?: string[] }>;
};

describe("api types vs firecracker-v1.14.yaml", () => {
  it.for(Object.entries(t.typedDefinitions))("%s matches the spec", ([name, declared]) => {
    const def = spec.definitions[name];
    expect(def, `definition ${name} missing from the spec`).toBeDefined();
    expect([...declared.keys].sort()).toEqual(Object.keys(def?.properties ?? {}).sort());
    expect([...declared.required].sort()).toEqual([...(def?.required ?? [])].sort());
  });
});

type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
type Check<T> = { keys: keyof T; required: RequiredKeys<T> };

describe("runtime key lists vs TypeScript interfaces (checked by tsc)", () => {
  it("every interface's keys equal its list", () => {
    expectTypeOf<Check<t.TokenBucket>>().toEqualTypeOf<{
      keys: (typeof t.TokenBucketKeys)[number];
      required: (typeof t.TokenBucketRequired)[number];
    }>();
    expectTypeOf<Check<t.RateLimiter>>().toEqualTypeOf<{
      keys: (typeof t.RateLimiterKeys)[number];
      required: never;
    }>();
    expectTypeOf<Check<t.InstanceInfo>>().toEqualTypeOf<{
      keys: (typeof t.InstanceInfoKeys)[number];
      required: (typeof t.InstanceInfoRequired)[number];
    }>();
    expectTypeOf<Check<t.MachineConfiguration>>().toEqualTypeOf<{
      keys: (typeof t.MachineConfigurationKeys)[number];
      required: (typeof t.MachineConfigurationRequired)[number];
    }>();
    expectTypeOf<Check<t.BootSource>>().toEqualTypeOf<{
      keys: (typeof t.BootSourceKeys)[number];
      required: (typeof t.BootSourceRequired)[number];
    }>();
    expectTypeOf<Check<t.Drive>>().toEqualTypeOf<{
      keys: (typeof t.DriveKeys)[number];
      required: (typeof t.DriveRequired)[number];
    }>();
    expectTypeOf<Check<t.PartialDrive>>().toEqualTypeOf<{
      keys: (typeof t.PartialDriveKeys)[number];
      required: (typeof t.PartialDriveRequired)[number];
    }>();
    expectTypeOf<Check<t.NetworkInterface>>().toEqualTypeOf<{
      keys: (typeof t.NetworkInterfaceKeys)[number];
      required: (typeof t.NetworkInterfaceRequired)[number];
    }>();
    expectTypeOf<Check<t.PartialNetworkInterface>>().toEqualTypeOf<{
      keys: (typeof t.PartialNetworkInterfaceKeys)[number];
      required: (typeof t.PartialNetworkInterfaceRequired)[number];
    }>();
    expectTypeOf<Check<t.Vsock>>().toEqualTypeOf<{
      keys: (typeof t.VsockKeys)[number];
      required: (typeof t.VsockRequired)[number];
    }>();
    expectTypeOf<Check<t.MmdsConfig>>().toEqualTypeOf<{
      keys: (typeof t.MmdsConfigKeys)[number];
      required: (typeof t.MmdsConfigRequired)[number];
    }>();
    expectTypeOf<Check<t.Logger>>().toEqualTypeOf<{
      keys: (typeof t.LoggerKeys)[number];
      required: never;
    }>();
    expectTypeOf<Check<t.SnapshotCreateParams>>().toEqualTypeOf<{
      keys: (typeof t.SnapshotCreateParamsKeys)[number];
      required: (typeof t.SnapshotCreateParamsRequired)[number];
    }>();
    expectTypeOf<Check<t.SnapshotLoadParams>>().toEqualTypeOf<{
      keys: (typeof t.SnapshotLoadParamsKeys)[number];
      required: (typeof t.SnapshotLoadParamsRequired)[number];
    }>();
    expectTypeOf<Check<t.MemoryBackend>>().toEqualTypeOf<{
      keys: (typeof t.MemoryBackendKeys)[number];
      required: (typeof t.MemoryBackendRequired)[number];
    }>();
    expectTypeOf<Check<t.Balloon>>().toEqualTypeOf<{
      keys: (typeof t.BalloonKeys)[number];
      required: (typeof t.BalloonRequired)[number];
    }>();
    expectTypeOf<Check<t.BalloonStats>>().toEqualTypeOf<{
      keys: (typeof t.BalloonStatsKeys)[number];
      required: (typeof t.BalloonStatsRequired)[number];
    }>();
    expectTypeOf<Check<t.FullVmConfiguration>>().toEqualTypeOf<{
      keys: (typeof t.FullVmConfigurationKeys)[number];
      required: never;
    }>();
  });
});

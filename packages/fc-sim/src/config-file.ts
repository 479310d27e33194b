import { readFileSync } from "node:fs";
import { BodyValidationError, validateBody } from "./body-validator.js";
import type { FcLogger } from "./fc-logger.js";
import type { Vmm } from "./vmm.js";

type Obj = Record<string, unknown>;

/** Top-level keys of a `--config-file`, in the order Firecracker applies them, with their spec definition. */
const sections: [key: string, definition: string, list: boolean][] = [
  ["logger", "Logger", false],
  ["metrics", "Metrics", false],
  ["machine-config", "MachineConfiguration", false],
  ["cpu-config", "CpuConfig", false],
  ["boot-source", "BootSource", false],
  ["drives", "Drive", true],
  ["pmem", "Pmem", true],
  ["network-interfaces", "NetworkInterface", true],
  ["mmds-config", "MmdsConfig", false],
  ["vsock", "Vsock", false],
  ["balloon", "Balloon", false],
  ["entropy", "EntropyDevice", false],
  ["memory-hotplug", "MemoryHotplugConfig", false],
];

/**
 * Boots from a JSON config file (kebab-case keys, as `firecracker --config-file`):
 * applies each section through the same VMM actions as the API, then InstanceStart.
 * @throws Error with Firecracker's "Configuration for VMM from one single json failed: ..." text.
 */
export async function bootFromConfigFile(path: string, vmm: Vmm, logger: FcLogger): Promise<void> {
  const fail = (m: string): Error =>
    new Error(`Configuration for VMM from one single json failed: ${m}`);
  let cfg: Obj;
  try {
    cfg = JSON.parse(readFileSync(path, "utf8")) as Obj;
  } catch (e) {
    throw fail(`Invalid JSON: ${(e as Error).message}`);
  }
  if (typeof cfg !== "object" || cfg === null || Array.isArray(cfg))
    throw fail("Invalid JSON: expected a map");
  for (const k of Object.keys(cfg)) {
    if (!sections.some(([s]) => s === k)) throw fail(`Invalid JSON: unknown field \`${k}\``);
  }
  if (!("boot-source" in cfg)) throw fail("Invalid JSON: missing field `boot-source`");
  for (const [key, def, list] of sections) {
    const value = cfg[key];
    if (value === undefined || value === null) continue;
    let v: unknown = value;
    if (key === "cpu-config" && typeof v === "string")
      v = JSON.parse(readFileSync(v, "utf8")) as unknown;
    try {
      validateBody(
        v,
        list
          ? { type: "array", items: { $ref: `#/definitions/${def}` } }
          : { $ref: `#/definitions/${def}` },
      );
    } catch (e) {
      if (e instanceof BodyValidationError) throw fail(`Invalid JSON: ${e.message}`);
      throw e;
    }
    try {
      await apply(vmm, key, v, logger);
    } catch (e) {
      throw fail((e as Error).message);
    }
  }
  const after = await vmm.createSyncAction({ action_type: "InstanceStart" }).catch((e: Error) => {
    throw fail(e.message);
  });
  after();
}

async function apply(vmm: Vmm, key: string, v: unknown, logger: FcLogger): Promise<void> {
  const o = v as Obj;
  switch (key) {
    case "logger":
      return vmm.putLogger(o, logger);
    case "metrics":
      return vmm.putMetrics(o);
    case "machine-config":
      return vmm.putMachineConfiguration(o, false);
    case "cpu-config":
      return vmm.putCpuConfiguration(o);
    case "boot-source":
      return vmm.putGuestBootSource(o);
    case "drives":
      for (const d of v as Obj[]) vmm.putGuestDriveById(d);
      return;
    case "pmem":
      for (const d of v as Obj[]) vmm.putGuestPmemById(d);
      return;
    case "network-interfaces":
      for (const d of v as Obj[]) vmm.putGuestNetworkInterfaceById(d);
      return;
    case "mmds-config":
      return vmm.putMmdsConfig(o);
    case "vsock":
      return vmm.putGuestVsock(o);
    case "balloon":
      return vmm.putBalloon(o);
    case "entropy":
      return vmm.putEntropyDevice(o);
    case "memory-hotplug":
      return vmm.putMemoryHotplug(o);
  }
}

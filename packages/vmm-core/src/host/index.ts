export { type HostCheck, type HostCheckInputs, runHostChecks } from "./host-checks.js";
export type { JailerCheckInputs } from "./jailer-check.js";
export { type KvmProbe, probeKvm } from "./kvm-probe.js";

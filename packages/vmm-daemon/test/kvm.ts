import { accessSync, constants } from "node:fs";

/**
 * Why a real Firecracker cannot start a microVM on this host, or undefined when
 * it can. InstanceStart (and a snapshot load) needs read-write /dev/kvm; without
 * it Firecracker answers "Kvm error: Error creating KVM object". Everything
 * before InstanceStart (the API, configuration calls) works without it.
 */
export function kvmUnavailable(): string | undefined {
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return `/dev/kvm is not usable here (${code}): Firecracker cannot start a microVM`;
  }
}

import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What opening /dev/kvm and asking it for a VM showed. */
export type KvmProbe =
  | { usable: true; apiVersion: number }
  | { usable: false; step: "open" | "api-version" | "create-vm" | "probe"; error: string };

// Node has no ioctl(2); perl (perl-base, Essential in Debian) does. _IO(0xAE, n): KVM_GET_API_VERSION
// = 0xAE00 answers 12 on every kernel since 2.6.22; KVM_CREATE_VM = 0xAE01 answers a VM fd, which
// is what Firecracker needs next (a KVM that opens but refuses VMs fails there).
const SCRIPT = `
open(my $f, "+<", $ARGV[0]) or do { print "open $!\\n"; exit 0 };
my $v = ioctl($f, 0xAE00, 0);
defined $v or do { print "api-version $!\\n"; exit 0 };
print "api $v\\n";
my $vm = ioctl($f, 0xAE01, 0);
defined $vm or do { print "create-vm $!\\n"; exit 0 };
print "vm ok\\n";
`;

/**
 * Opens `device` (default /dev/kvm) read-write, reads its API version and creates (then drops) a VM:
 * the three things Firecracker does first. Needs `perl` for the ioctls.
 */
export async function probeKvm(device = "/dev/kvm"): Promise<KvmProbe> {
  let out: string;
  try {
    ({ stdout: out } = await run("perl", ["-e", SCRIPT, device], { timeout: 10_000 }));
  } catch (err) {
    return { usable: false, step: "probe", error: `perl could not run the probe: ${String(err)}` };
  }
  const lines = out.trim().split("\n");
  const fail = lines.find((l) => /^(open|api-version|create-vm) /.test(l));
  if (fail) {
    const [step, ...rest] = fail.split(" ");
    return { usable: false, step: step as "open", error: rest.join(" ") };
  }
  const api = Number(/^api (\d+)/m.exec(out)?.[1] ?? Number.NaN);
  if (!lines.includes("vm ok") || !Number.isFinite(api)) {
    return { usable: false, step: "probe", error: `unexpected probe output: ${out.trim()}` };
  }
  return { usable: true, apiVersion: api };
}

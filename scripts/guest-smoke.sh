#!/usr/bin/env bash
# Boots the vmm guest kernel (guest/kernel/build.sh) with the project's rootfs under QEMU's software
# emulation (-M microvm: virtio-mmio like Firecracker, no KVM needed) and the daemon's own boot args plus
# vmm.selftest=1, then reads the serial console: root mounted, the agent running as PID 1 with its init
# duties done, the agent's self-test line passing, the VM ending through the agent's shutdown path.
# Exits 0 with one summary line; non-zero with the console tail. Exit 3: a prerequisite is missing (QEMU,
# or no built kernel with --cached), said on stderr; callers that treat that as "skip" test for 3.
#
#   bash scripts/guest-smoke.sh [--cached] [--kernel PATH] [--rootfs PATH] [--console FILE]
#     --cached   use the cached kernel only; never start a kernel build (tests, CI)
set -euo pipefail
cd "$(dirname "$0")/.."

kernel="" rootfs="" cached=0 console=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cached) cached=1 ;;
    --kernel) kernel="$2"; shift ;;
    --rootfs) rootfs="$2"; shift ;;
    --console) console="$2"; shift ;;
    *) echo "guest-smoke: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# A TCG boot takes seconds on an idle machine; the self-test then needs a few more. Generous for busy hosts.
timeout_s="${GUEST_SMOKE_TIMEOUT_S:-180}"

qemu="$(command -v qemu-system-x86_64 || true)"
[ -n "$qemu" ] || { echo "guest-smoke: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2; exit 3; }
if [ -z "$kernel" ]; then
  if [ "$cached" = 1 ]; then
    kernel="$(bash guest/kernel/build.sh --check)" || exit 3
  else
    kernel="$(bash guest/kernel/build.sh)"
  fi
fi
[ -s "$kernel" ] || { echo "guest-smoke: no kernel at $kernel" >&2; exit 2; }
[ -z "$rootfs" ] || [ -s "$rootfs" ] || { echo "guest-smoke: no rootfs at $rootfs" >&2; exit 2; }

# The daemon's default boot args (config defaults.boot_args), plus what Firecracker appends for the root
# drive and what the daemon appends for the agent. No ip=: this VM has no network device.
boot_args="$(sed -n 's/^boot_args = "\(.*\)"$/\1/p' config.example.toml | head -1)"
[ -n "$boot_args" ] || { echo "guest-smoke: no boot_args in config.example.toml" >&2; exit 2; }
hostname="smoke-$$"
cmdline="$boot_args root=/dev/vda rw vmm.agent_port=1024 vmm.hostname=$hostname vmm.selftest=1"
# QEMU only (Firecracker gives guests kvm-clock): under TCG the kernel calibrates the TSC against the
# emulated PIT, which fails now and then on a busy host ("Unable to calibrate against PIT", then the
# boot hangs). TCG's TSC runs at the host's rate, so tell the kernel that rate and skip the calibration.
tsc_khz="$(awk -F': ' '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)"
[ -z "$tsc_khz" ] || cmdline="$cmdline tsc_early_khz=$tsc_khz"

work="$(mktemp -d /tmp/guest-smoke.XXXXXX)"
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# The guest writes to its root disk: boot a copy of --rootfs, or else a rootfs built here from the
# current agent source (a stale image would test an old agent; the build takes about a second).
if [ -n "$rootfs" ]; then
  cp --reflink=auto "$rootfs" "$work/rootfs.ext4"
else
  make -s -C guest/agent all >&2
  bash guest/rootfs/build-rootfs.sh --out "$work/rootfs" >"$work/rootfs.log" 2>&1 ||
    { cat "$work/rootfs.log" >&2; echo "guest-smoke: building the rootfs failed" >&2; exit 2; }
  mv "$work/rootfs/rootfs.ext4" "$work/rootfs.ext4"
fi
log="${console:-$work/console.log}"
: >"$log"

start="$(date +%s%N)"
# microvm: virtio-mmio devices described in ACPI (as Firecracker >= 1.8 does); pit/pic/rtc, or the kernel
# hangs calibrating its clock under TCG. -no-reboot: the guest's reboot (the agent's shutdown) ends QEMU.
"$qemu" -M microvm,accel=tcg,pit=on,pic=on,rtc=on -smp 1 -m 256 \
  -nodefaults -no-user-config -display none -no-reboot \
  -serial "file:$log" \
  -kernel "$kernel" -append "$cmdline" \
  -drive "id=root,file=$work/rootfs.ext4,format=raw,if=none" -device virtio-blk-device,drive=root \
  </dev/null >"$work/qemu.out" 2>&1 &
qemu_pid=$!

exited=0
deadline=$(($(date +%s) + timeout_s))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$qemu_pid" 2>/dev/null; then exited=1; break; fi
  sleep 0.5
done
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [ "$exited" = 1 ]; then wait "$qemu_pid" || true; qemu_pid=""; fi

failures=()
need() { grep -qaE "$1" "$log" || failures+=("$2"); }
need 'VFS: Mounted root \(ext4 filesystem\)' "root not mounted (no 'VFS: Mounted root (ext4 filesystem)')"
need 'Run /sbin/init as init process' "the kernel did not start /sbin/init"
need 'vmm-agent: no vsock transport: ' "the agent did not report the missing vsock transport"
need 'vmm-agent: self-test: ' "the agent did not start its self-test (vmm.selftest=1)"
result="$(grep -aoE 'VMM-SELFTEST \{.*\}' "$log" | tail -1 | sed 's/^VMM-SELFTEST //' || true)"
if [ -z "$result" ]; then
  failures+=("no VMM-SELFTEST result line")
elif ! grep -q '^{"ok":true,' <<<"$result"; then
  failures+=("self-test failed: $result")
fi
need 'vmm-agent: shutdown: filesystems synced' "the agent's shutdown path did not run to the sync"
[ "$exited" = 1 ] || failures+=("the VM did not end within ${timeout_s}s (QEMU still running)")
grep -qai 'Kernel panic' "$log" && failures+=("kernel panic")

if [ "${#failures[@]}" -gt 0 ]; then
  echo "guest-smoke: FAILED after $((elapsed_ms / 1000)) s: ${failures[*]}" >&2
  echo "---- console tail ($log) ----" >&2
  tail -n 40 "$log" >&2
  [ -s "$work/qemu.out" ] && { echo "---- qemu ----" >&2; tail -n 10 "$work/qemu.out" >&2; }
  exit 1
fi
# Boot milestones from the kernel's printk timestamps ([   1.234567]), guest time.
at() { grep -aE "$1" "$log" | head -1 | sed -nE 's/^\[ *([0-9]+\.[0-9]{2}).*/\1/p'; }
passed="$(sed -nE 's/.*"passed":([0-9]+).*/\1/p' <<<"$result")"
echo "guest-smoke: ok: $(basename "$(dirname "$kernel")") booted under QEMU TCG; root mounted at $(at 'VFS: Mounted root')s," \
  "agent PID 1 at $(at 'Run /sbin/init')s (guest clock); self-test $passed/$passed checks passed; the" \
  "agent's shutdown ended the VM; $((elapsed_ms / 1000)) s wall"

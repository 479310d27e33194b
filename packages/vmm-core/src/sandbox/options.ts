import type { SandboxImages } from "../images/sandbox-images.js";
import type { Logger } from "../internal/index.js";
import type { HostResolver, NetworkManager } from "../network/index.js";
import type { SnapshotCatalog } from "../snapshot/index.js";
import type { DiskCloner } from "../storage/index.js";
import type { VmmRuntime } from "../vm/microvm.js";
import type { GoldenOptions } from "./golden-pool.js";
import type { SandboxLimits } from "./limits.js";
import type { AdoptAllOptions } from "./recovery.js";
import type { NetworkMode } from "./types.js";

/** Defaults applied to Create requests (config `[defaults]`, `[network] mode`). */
export interface SandboxDefaults {
  readonly vcpus: number;
  readonly memoryMib: number;
  readonly kernel: string;
  readonly rootfs: string;
  readonly bootArgs: string;
  readonly network: NetworkMode;
}

/** Options of `SandboxManager`. */
export interface SandboxManagerOptions {
  readonly dataDir: string;
  /** Where kernel and rootfs names are looked up. */
  readonly imagesDir: string;
  /**
   * Further directories a request's absolute kernel/rootfs path may point into
   * (config `storage.allowed_image_roots`). Default none: only `imagesDir`.
   */
  readonly allowedImageRoots?: readonly string[];
  readonly runtime: VmmRuntime;
  /** Network slots for mode "tap" sandboxes (a "none" manager makes every sandbox NIC-less). */
  readonly network: NetworkManager;
  readonly cloner: DiskCloner;
  readonly defaults: SandboxDefaults;
  readonly limits: SandboxLimits;
  readonly agent: {
    readonly port: number;
    readonly readiness: "agent" | "vmm";
    readonly bootTimeoutMs: number;
    readonly callTimeoutMs: number;
  };
  readonly logger: Logger;
  /**
   * Snapshot catalog, or the promise of one still being opened (startup does
   * not wait for it); absent = Checkpoint/Restore answer UNIMPLEMENTED.
   */
  readonly catalog?: SnapshotCatalog | Promise<SnapshotCatalog>;
  /**
   * Golden snapshots (config `[golden]`): Create restores a pre-booted
   * snapshot of the same kernel/rootfs/size/boot args instead of booting.
   * Needs `catalog`. Absent = off. Golden snapshots have their own budget:
   * they never count against `limits`.
   */
  readonly golden?: GoldenOptions;
  /**
   * Put host details (Firecracker pids, absolute image and snapshot paths)
   * in views; otherwise images are named relative to `imagesDir` and
   * snapshot directories relative to `dataDir` (config
   * `grpc.expose_host_details`). Default false.
   */
  readonly exposeHostDetails?: boolean;
  /** Called on every Create (the daemon warns when sandboxes are simulated). */
  readonly onCreate?: (id: string) => void;
  /** Bounds of startup re-adoption (`recover`): parallelism and per-sandbox deadline. */
  readonly recovery?: AdoptAllOptions;
  /**
   * Pause and resume (config `[lifecycle]`): the auto-pause default for
   * Creates that ask for none (0 = never) and whether Run/Exec resume a
   * paused sandbox. Default `{ autoPauseSeconds: 0, autoResume: true }`.
   */
  readonly lifecycle?: { readonly autoPauseSeconds: number; readonly autoResume: boolean };
  /**
   * ExposePort (config `[ports]`): the host address forwarders listen on, or
   * why ports cannot work on this daemon (ExposePort then fails with it).
   * Default `{ listenHost: "127.0.0.1" }`.
   */
  readonly ports?: { readonly listenHost: string } | { readonly unavailable: string };
  /** Resolves host names of egress policies. Default: the system resolver. */
  readonly resolveHost?: HostResolver;
  /**
   * OCI images for Create's `image` (docs/images.md): the image store, the
   * rootfs builder and the pull policy. Absent = Create with `image` answers
   * UNIMPLEMENTED.
   */
  readonly images?: SandboxImages;
}

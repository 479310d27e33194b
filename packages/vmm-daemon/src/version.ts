/** The daemon's version, reported by `--version` and the `vmm-version` response header. */
export const VERSION = "0.1.0";

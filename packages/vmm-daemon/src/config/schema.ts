/**
 * The daemon's configuration schema: every key, its type, default and
 * meaning. Parsing, environment overrides, `--check-config` and the test that
 * keeps config.example.toml complete are all driven by this one table.
 */

export type KeyType =
  | { readonly t: "string" }
  | { readonly t: "path" }
  | { readonly t: "int"; readonly min: number; readonly max: number }
  | { readonly t: "bool" }
  | { readonly t: "enum"; readonly values: readonly string[] }
  | { readonly t: "strings" }
  /** A table of tables of strings (`[section.key."name"]`), each with only these keys. */
  | { readonly t: "tables"; readonly keys: readonly string[] };

export interface KeySpec {
  readonly type: KeyType;
  readonly default:
    | string
    | number
    | boolean
    | readonly string[]
    | Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly doc: string;
}

const str = (def: string, doc: string) => ({ type: { t: "string" as const }, default: def, doc });
const path = (def: string, doc: string) => ({ type: { t: "path" as const }, default: def, doc });
const int = (def: number, min: number, max: number, doc: string) => ({
  type: { t: "int" as const, min, max },
  default: def,
  doc,
});
const bool = (def: boolean, doc: string) => ({ type: { t: "bool" as const }, default: def, doc });
const oneOf = <const V extends readonly string[]>(def: V[number], values: V, doc: string) => ({
  type: { t: "enum" as const, values },
  default: def,
  doc,
});
const strings = (def: readonly string[], doc: string) => ({
  type: { t: "strings" as const },
  default: def,
  doc,
});

const tables = (keys: readonly string[], doc: string) => ({
  type: { t: "tables" as const, keys },
  default: {} as Readonly<Record<string, Readonly<Record<string, string>>>>,
  doc,
});

const MAX_U32 = 4_294_967_295;

/** Sections in file order; `firecracker.jailer` is the `[firecracker.jailer]` table. */
export const schema = {
  daemon: {
    log_level: oneOf(
      "info",
      ["trace", "debug", "info", "warn", "error", "fatal"],
      "Daemon log level.",
    ),
    log_format: oneOf(
      "auto",
      ["auto", "json", "pretty"],
      "auto = pretty on a TTY, JSON otherwise.",
    ),
    on_shutdown: oneOf(
      "stop",
      ["stop", "keep"],
      "What happens to running sandboxes when the daemon exits: stop them, or keep their microVMs running (a restarted daemon re-adopts them: docs/architecture.md).",
    ),
  },
  firecracker: {
    binary: str(
      "firecracker",
      'Path or PATH name of the firecracker binary (v1.14.x). "auto" = firecracker from PATH when /dev/kvm is usable, otherwise the fc-sim simulator (development only: no isolation).',
    ),
    data_dir: path(
      "/var/lib/vmm",
      "Sandboxes, snapshots and images live here. Keep it short: Unix socket paths are limited to 107 bytes.",
    ),
    log_level: oneOf(
      "Warning",
      ["Error", "Warning", "Info", "Debug", "Trace", "Off"],
      "Firecracker's own log level (--level).",
    ),
    no_seccomp: bool(
      false,
      "Disable Firecracker's seccomp filters (--no-seccomp). Never in production.",
    ),
    seccomp_filter: path(
      "",
      "A custom compiled seccomp filter (--seccomp-filter); empty = Firecracker's default.",
    ),
    http_api_max_payload_size: int(
      51200,
      1024,
      1 << 30,
      "Largest API request body Firecracker accepts, bytes.",
    ),
    mmds_size_limit: int(0, 0, 1 << 30, "Largest MMDS store, bytes; 0 = the payload limit."),
    start_timeout_ms: int(
      3000,
      100,
      600_000,
      "How long to wait for a new Firecracker's API socket.",
    ),
    api_timeout_ms: int(
      30_000,
      100,
      600_000,
      "Deadline of one Firecracker API call (snapshots of big guests take seconds).",
    ),
  },
  "firecracker.jailer": {
    enabled: bool(
      false,
      "Run every Firecracker under the jailer (chroot, uid/gid, cgroups, new PID namespace). Recommended in production (the daemon then runs as root; scripts/install.sh's service config enables it); off by default so a development machine needs no jailer. `--check-host` says whether it is usable.",
    ),
    binary: str(
      "jailer",
      "Path or PATH name of the jailer binary (same release as firecracker; tested: jailer v1.0.0 with Firecracker v1.14.2, docs/install.md).",
    ),
    chroot_base_dir: path(
      "/srv/jailer",
      "Jail root base (keep it short: socket path limits). Put it on data_dir's filesystem: disks, kernel and snapshots are hard-linked into each jail, copied otherwise.",
    ),
    uid: int(10000, 1, MAX_U32, "uid Firecracker runs as."),
    gid: int(10000, 1, MAX_U32, "gid Firecracker runs as."),
    cgroup_version: int(2, 1, 2, "cgroup version the jailer uses."),
    parent_cgroup: str("vmm", "Parent cgroup of every sandbox's cgroup."),
    new_pid_ns: bool(true, "Start Firecracker as PID 1 of a new PID namespace."),
  },
  network: {
    mode: oneOf(
      "tap",
      ["tap", "none"],
      'Default network mode of new sandboxes: "tap" (own namespace, TAP, NAT) or "none" (no NIC).',
    ),
    host_cidr: str(
      "10.200.0.0/16",
      "Block the host-reachable sandbox addresses and veth links are carved from.",
    ),
    guest_cidr: str(
      "172.16.0.0/30",
      "The guest's /30, the same in every sandbox (TAP = first host address, guest = second).",
    ),
    netns_prefix: str("vmm-", "Prefix of the per-sandbox network namespaces."),
    pool_size: int(8, 0, 1024, "Namespaces kept pre-created for fast Create."),
    dns: strings(["1.1.1.1"], "DNS servers given to guests (through the ip= kernel argument)."),
    uplink: str("", "Host interface for sandbox egress (masquerade); empty = no egress."),
    host_netns: str(
      "",
      'Network namespace that plays "the host" for veth ends, routes and rules; empty = the daemon\'s own. Tests and dev setups use a private one.',
    ),
  },
  grpc: {
    unix_socket: path(
      "/run/vmm/vmm.sock",
      "Unix socket the API listens on (parent directory created, mode socket_mode).",
    ),
    socket_mode: str("0660", "File mode of the Unix socket, octal."),
    socket_group: str(
      "",
      "Group (name or numeric gid) the Unix socket is chowned to, so non-root members of that group can call the API (with socket_mode 0660); empty = the daemon's own group. An unknown group is a startup error.",
    ),
    tcp_addr: str(
      "",
      'Optional TCP listener, "host:port"; empty = off. Requires authentication: auth_token, tls_client_ca (mutual TLS), or both. TLS alone (tls_cert/tls_key) is encryption, not authentication, and is refused.',
    ),
    auth_token: str(
      "",
      "Bearer token required on the TCP listener (authorization: Bearer <token>), checked on the request headers before any body is read.",
    ),
    tls_cert: path("", "PEM certificate for the TCP listener."),
    tls_key: path("", "PEM private key for the TCP listener."),
    expose_host_details: bool(
      false,
      "Show host details to API clients: Firecracker pids and absolute kernel, rootfs and snapshot paths (otherwise names under images_dir and paths relative to data_dir). Logs always have them.",
    ),
    tls_client_ca: path(
      "",
      "PEM CA bundle: when set, the TCP listener requires mutual TLS, a client certificate signed by one of these CAs (needs tls_cert/tls_key). Combined with auth_token, both are required.",
    ),
    max_connections: int(
      1024,
      1,
      1_000_000,
      "Open connections per listener (Unix socket and TCP each); one more is closed at once, without touching the others. Mind the process's open-file limit (ulimit -n).",
    ),
    idle_timeout_ms: int(
      300_000,
      1000,
      86_400_000,
      "A connection with no call in progress is closed after this long (a long-lived Events or Exec stream keeps its connection open).",
    ),
    request_timeout_ms: int(
      30_000,
      1000,
      3_600_000,
      "A request's headers, and the body of every call except client-streaming ones (Exec, reflection), must arrive within this; a slower one (slowloris) is cancelled and its connection closed (HTTP/1.1).",
    ),
    max_concurrent_streams: int(
      256,
      1,
      100_000,
      "Concurrent calls per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS).",
    ),
    http2_stream_window_bytes: int(
      4 * 1024 * 1024,
      65_535,
      2_147_483_647,
      "HTTP/2 flow-control window of each call (SETTINGS_INITIAL_WINDOW_SIZE): what a client may send ahead of the daemon reading it. Node's default of 64 KiB holds a file upload to a fraction of what the guest takes.",
    ),
    http2_connection_window_bytes: int(
      16 * 1024 * 1024,
      65_535,
      2_147_483_647,
      "HTTP/2 receive window of each connection, all its calls together: at most this much unread request data per connection (worst case max_connections × this).",
    ),
    http2_max_frame_bytes: int(
      1024 * 1024,
      16_384,
      16_777_215,
      "Largest HTTP/2 DATA frame a client may send (SETTINGS_MAX_FRAME_SIZE); bigger frames cost fewer round trips through the HTTP/2 stack per MB.",
    ),
    max_event_streams: int(
      1024,
      1,
      1_000_000,
      "Events streams open at once, all clients together; more fail with RESOURCE_EXHAUSTED.",
    ),
    max_event_streams_per_connection: int(
      64,
      1,
      100_000,
      "Events streams open at once on one connection; more fail with RESOURCE_EXHAUSTED.",
    ),
    max_message_bytes: int(
      4 << 20,
      1024,
      1 << 30,
      "Largest request message; bigger ones fail with RESOURCE_EXHAUSTED.",
    ),
    list_page_size: int(
      1000,
      1,
      100_000,
      "Items per List/ListSnapshots page when the client sends no page_size, and the most it may ask for. A page also ends before it would pass half of max_message_bytes.",
    ),
    shutdown_grace_ms: int(
      10_000,
      0,
      600_000,
      "On SIGINT/SIGTERM, how long in-flight calls may finish before they are cancelled.",
    ),
  },
  http: {
    listen: str(
      "",
      'Ops HTTP listener, "host:port": /metrics (Prometheus), /healthz, /readyz, the Connect API under /api and the web console (docs/operations.md); empty = off. Without auth_token it must listen on loopback only (127.0.0.1, [::1] or localhost); anything else is refused at startup.',
    ),
    auth_token: str(
      "",
      "Bearer token the ops listener requires on every request but /healthz and /readyz (Authorization: Bearer <token>; WebSocket upgrades may instead send the subprotocol vmm.token.<token>), compared in constant time. Required unless listen is loopback only; when set, loopback requests need it too.",
    ),
  },
  defaults: {
    vcpus: int(1, 1, 32, "vCPUs of a sandbox that asks for none."),
    memory_mib: int(256, 16, 1 << 20, "Memory of a sandbox that asks for none, MiB."),
    kernel: str(
      "vmlinux",
      "Guest kernel: a path, or a file name under images_dir. Trusted (may lie outside storage.allowed_image_roots).",
    ),
    rootfs: str(
      "rootfs.ext4",
      "Base root filesystem: a path, or a file name under images_dir. Trusted (may lie outside storage.allowed_image_roots).",
    ),
    boot_args: str(
      "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd",
      "Kernel command line; the daemon appends ip= (network) and vmm.agent_port=.",
    ),
  },
  agent: {
    port: int(1024, 1, MAX_U32, "vsock port the in-guest agent listens on."),
    readiness: oneOf(
      "agent",
      ["agent", "vmm"],
      '"agent": ready when the guest agent answers; "vmm": ready when InstanceStart returned (images without our agent; Run/Exec then fail).',
    ),
    boot_timeout_ms: int(
      30_000,
      100,
      3_600_000,
      "Create fails (state failed) when the sandbox is not ready by then.",
    ),
    call_timeout_ms: int(
      10_000,
      100,
      600_000,
      "Deadline of one agent call (not of a command's run time).",
    ),
  },
  limits: {
    max_sandboxes: int(256, 1, 100_000, "Sandboxes that may exist at once."),
    max_vcpus_per_sandbox: int(8, 1, 32, "Largest vCPU count one sandbox may ask for."),
    max_memory_mib_per_sandbox: int(
      8192,
      16,
      1 << 22,
      "Largest memory one sandbox may ask for, MiB.",
    ),
    max_total_vcpus: int(0, 0, 1 << 20, "vCPUs of all sandboxes together; 0 = unlimited."),
    max_total_memory_mib: int(
      0,
      0,
      1 << 30,
      "Memory of all sandboxes together, MiB; 0 = unlimited.",
    ),
    max_concurrent_creates: int(
      32,
      1,
      10_000,
      "Creates booting at once; more fail fast with RESOURCE_EXHAUSTED.",
    ),
    max_total_disk_gib: int(
      0,
      0,
      1 << 30,
      "Disk under data_dir for sandbox disks and snapshots, GiB (apparent sizes: what the files can grow to); Create, Restore and Checkpoint beyond it fail with RESOURCE_EXHAUSTED; 0 = unlimited.",
    ),
    max_snapshots_per_sandbox: int(
      64,
      0,
      100_000,
      "Snapshots one sandbox may have at once (Checkpoint beyond it fails with RESOURCE_EXHAUSTED); 0 = unlimited.",
    ),
  },
  storage: {
    rootfs_clone: oneOf(
      "auto",
      ["auto", "reflink", "copy"],
      'How each sandbox gets its writable rootfs: "reflink" (fails where unsupported), "copy", or "auto" (reflink, else copy).',
    ),
    images_dir: path("", "Where kernel and rootfs names are looked up; empty = <data_dir>/images."),
    allowed_image_roots: strings(
      [],
      "Absolute directories that a request's absolute kernel/rootfs path may point into, besides images_dir. Empty = only images_dir. Request paths are resolved with symlinks followed and must stay inside a root; /proc, /sys, /dev and data_dir (except images_dir) are never allowed. defaults.kernel/rootfs are config and may lie anywhere.",
    ),
    spare_clones: int(
      4,
      0,
      1024,
      "Rootfs copies made ahead of time (one per recently used image or snapshot) so Create and Restore skip the copy where reflinks are unavailable; each costs the image's data size on disk; 0 = off.",
    ),
  },
  golden: {
    enabled: bool(
      false,
      "Create sandboxes by restoring a pre-booted golden snapshot of the same kernel/rootfs/size instead of booting.",
    ),
    max_snapshots: int(
      4,
      1,
      1024,
      "Golden snapshots kept (one per spec in use); beyond it the least recently used is deleted. Golden snapshots and their builds never count against [limits].",
    ),
    max_concurrent_builds: int(
      1,
      1,
      64,
      "Golden builds (a hidden boot and checkpoint) running at once; a spec whose build could not start is built on a later Create.",
    ),
  },
  ports: {
    listen_host: str(
      "127.0.0.1",
      "Address ExposePort's TCP forwarders listen on (each on an ephemeral port); 0.0.0.0 makes exposed guest ports reachable from other machines. docs/networking.md.",
    ),
  },
  proxy: {
    listen: str(
      "",
      'HTTP reverse proxy for exposed ports, "ip:port" (e.g. "127.0.0.1:8088", "0.0.0.0:80"); empty = off. It routes Host <guest port>-<sandbox id>.<domain> to that port of the sandbox, only for ports exposed with ExposePort, and requires the API token (grpc.auth_token) or the sandbox\'s access token. docs/networking.md, "HTTP proxy".',
    ),
    domain: str(
      "",
      'Domain under which sandbox ports are named (required with listen), e.g. "sandbox.example.com": a wildcard DNS record *.sandbox.example.com must point at this host.',
    ),
    url_scheme: oneOf(
      "http",
      ["http", "https"],
      'Scheme of the URLs ExposePort answers: "https" when a TLS terminator in front of the proxy serves them (the proxy itself speaks plain HTTP/1.1).',
    ),
    url_port: int(
      0,
      0,
      65535,
      "Port in the URLs ExposePort answers (left out when it is the scheme's default); 0 = the proxy's listen port with http, 443 with https.",
    ),
    max_connections: int(
      4096,
      1,
      1_000_000,
      "Client connections the proxy holds at once (WebSockets included); more are closed at once.",
    ),
  },
  lifecycle: {
    auto_pause_seconds: int(
      0,
      0,
      MAX_U32,
      "Pause a sandbox after this many seconds without a Run or Exec (and none attached), unless its Create asks otherwise (auto_pause_seconds); 0 = never. docs/pause-resume.md.",
    ),
    auto_resume: bool(
      true,
      "Run and Exec on a paused sandbox resume it first; off = they fail with FAILED_PRECONDITION until Resume.",
    ),
  },
  images: {
    pull: oneOf(
      "missing",
      ["missing", "never", "always"],
      'When Create with an image pulls it: "missing" (only when not in the store), "never" (fail unless stored), "always" (ask the registry on every Create). docs/images.md.',
    ),
    insecure_registries: strings(
      [],
      'Registries (host[:port], as written in references, e.g. "127.0.0.1:5000") spoken to over plain HTTP instead of HTTPS.',
    ),
    max_layer_bytes: int(
      4 * 2 ** 30,
      1,
      2 ** 50,
      "Largest image layer (compressed) a pull accepts, bytes; a bigger one fails with RESOURCE_EXHAUSTED before it is downloaded.",
    ),
    registries: tables(
      ["username", "password", "password_file", "token", "token_file"],
      'Credentials per registry: replace this line with one table per registry, e.g. [images.registries."ghcr.io"] with username + password (HTTP basic, or sent to the registry\'s token service), or token (a bearer token). Secrets can be read from files instead (password_file, token_file: absolute paths, read at startup, trailing newline dropped), or the whole table given as JSON in the environment variable. docs/images.md.',
    ),
  },
} as const satisfies Record<string, Record<string, KeySpec>>;

export type Schema = typeof schema;
export type SectionName = keyof Schema;

type ValueOf<K extends KeySpec> = K["type"] extends { t: "int" }
  ? number
  : K["type"] extends { t: "bool" }
    ? boolean
    : K["type"] extends { t: "strings" }
      ? readonly string[]
      : K["type"] extends { t: "tables" }
        ? Readonly<Record<string, Readonly<Record<string, string>>>>
        : K["type"] extends { t: "enum"; values: readonly (infer V)[] }
          ? V
          : string;

/** The typed configuration: one readonly object per section. */
export type Config = {
  readonly [S in SectionName]: { readonly [K in keyof Schema[S]]: ValueOf<Schema[S][K] & KeySpec> };
};

/** `VMM_<SECTION>_<KEY>` in upper case; `firecracker.jailer` becomes `FIRECRACKER_JAILER`. */
export function envName(section: string, key: string): string {
  return `VMM_${section.replace(".", "_")}_${key}`.toUpperCase();
}

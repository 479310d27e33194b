import { InvalidArgumentError } from "../errors.js";
import { quote } from "../internal/quote.js";

/** The registry a name without a registry part is pulled from. */
export const DEFAULT_REGISTRY = "docker.io";

/** A parsed, normalized image reference. Immutable. */
export interface ImageReference {
  /** Registry host[:port] as written (`docker.io` for Docker Hub). */
  readonly registry: string;
  /** Repository path, e.g. `library/busybox`. */
  readonly repository: string;
  /** The tag; `latest` when neither tag nor digest was given; undefined with a digest only. */
  readonly tag: string | undefined;
  /** `sha256:<hex>` when pinned by digest (wins over a tag). */
  readonly digest: string | undefined;
  /** The canonical form, e.g. `docker.io/library/busybox:latest`: the key images are stored under. */
  readonly normalized: string;
}

// The distribution reference grammar (distribution/reference/regexp.go).
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;
const MAX_NAME = 255;

/**
 * Parses and normalizes an image reference the way docker and containerd do:
 * `busybox` → `docker.io/library/busybox:latest`, `host:port/name:tag`,
 * `name@sha256:<hex>`, `name:tag@sha256:<hex>` (the digest is what is pulled).
 * Throws InvalidArgumentError (`field`, default `reference`) saying what is wrong.
 */
export function parseImageReference(input: string, field = "reference"): ImageReference {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(
      field,
      `${quote(input, 200)} is not an image reference: ${why}`,
      {
        hint: "write it like busybox, docker.io/library/busybox:1.36, 127.0.0.1:5000/app:v1 or app@sha256:<64 hex>",
      },
    );
  };
  if (input === "") fail("it is empty");
  if (input.length > 512) fail("it is longer than 512 characters");
  if (/\s/.test(input)) fail("it contains whitespace");
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) fail("the digest must be sha256:<64 lowercase hex>");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      fail(`the tag ${quote(tag)} is not valid (letters, digits, _ . -; at most 128)`);
  }
  if (rest === "") fail("the repository name is missing");
  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!DOMAIN.test(registry)) fail(`the registry ${quote(registry)} is not a host[:port]`);
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") {
    registry = DEFAULT_REGISTRY;
  }
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift("library");
  for (const c of parts) {
    if (!COMPONENT.test(c)) {
      fail(
        `the path component ${quote(c)} is not valid (lowercase letters, digits, and . _ __ - between them)`,
      );
    }
  }
  const repository = parts.join("/");
  if (`${registry}/${repository}`.length > MAX_NAME) fail(`the name is longer than ${MAX_NAME}`);
  if (tag === undefined && digest === undefined) tag = "latest";
  const normalized =
    `${registry}/${repository}` +
    (tag !== undefined ? `:${tag}` : "") +
    (digest !== undefined ? `@${digest}` : "");
  return { registry, repository, tag, digest, normalized };
}

/** The host the distribution API of a registry answers on (Docker Hub's is not docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? "registry-1.docker.io" : registry;
}

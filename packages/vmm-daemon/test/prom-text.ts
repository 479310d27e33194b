/** One sample of a Prometheus text exposition. */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed exposition: samples plus the TYPE of each metric family. */
export interface PromText {
  readonly samples: readonly PromSample[];
  readonly types: ReadonlyMap<string, string>;
  /** Samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): PromSample[];
  /** The one sample named `name` with exactly these labels' values (among others), or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

/**
 * Parses the Prometheus text format (version 0.0.4): `# TYPE` lines, and
 * samples `name{label="value",…} number`. Throws on a line it cannot read,
 * so a malformed exposition fails the test that parses it.
 */
export function parsePromText(text: string): PromText {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (t) types.set(t[1]!, t[2]!);
      else if (!line.startsWith("# HELP ")) throw new Error(`bad comment line: ${line}`);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
      let consumed = 0;
      for (const l of m[2].matchAll(re)) {
        labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
        consumed += l[0].length;
      }
      if (consumed !== m[2].length) throw new Error(`bad labels: ${line}`);
    }
    // prom-client writes NaN as "Nan"; Prometheus reads floats with Go's ParseFloat, which takes
    // nan/inf in any case.
    const raw = m[3]!.toLowerCase();
    const value = raw === "+inf" ? Infinity : raw === "-inf" ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && raw !== "nan") throw new Error(`bad value: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  return {
    samples,
    types,
    find,
    value: (name, labels) => find(name, labels)[0]?.value,
  };
}

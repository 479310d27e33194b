import { InputError } from "./errors.js";

/**
 * Parses `k=v, k2=v2` (commas or newlines between pairs) into a label map; throws an
 * InputError naming the bad pair. The daemon checks keys and values against its own rules.
 */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(/[,\n]/)) {
    const trimmed = pair.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0) throw new InputError(`labels: ${JSON.stringify(trimmed)} is not key=value`);
    labels[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return labels;
}

/** Longest part of a client's value an error message repeats, in characters. */
export const QUOTE_MAX_CHARS = 64;

/**
 * Quotes a client-supplied value for an error message: JSON-quoted, cut to
 * `max` characters with the full length said, so a message never repeats
 * megabytes of input back to the client or into the log.
 */
export function quote(value: string, max: number = QUOTE_MAX_CHARS): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}

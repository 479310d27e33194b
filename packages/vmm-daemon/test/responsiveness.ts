/**
 * How fast the daemon answers while a test attacks it: the fastest of `tries`
 * calls made one after another, in ms. A blocked event loop makes every one of
 * them slow; a single slow answer alone is the busy test host's noise (other
 * suites run on the same two cores).
 */
export async function bestOfMs(call: () => Promise<unknown>, tries = 5): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < tries; i++) {
    const t = performance.now();
    await call();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/**
 * A write that always ends with the latest state: `request()` while a write
 * is in flight marks it dirty and the writer runs once more when it
 * finishes, so writes of one file are serialized and coalesced.
 */
export class CoalescedWrite {
  #inFlight: Promise<void> | undefined;
  #dirty = false;

  constructor(private readonly write: () => Promise<void>) {}

  /** Resolves when the state as of this call is written. */
  request(): Promise<void> {
    if (this.#inFlight) {
      this.#dirty = true;
      return this.#inFlight;
    }
    this.#inFlight = (async () => {
      do {
        this.#dirty = false;
        await this.write();
      } while (this.#dirty);
    })().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Resolves when no write is in flight. */
  async idle(): Promise<void> {
    await this.#inFlight;
  }
}

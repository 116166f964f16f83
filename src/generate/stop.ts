/**
 * Stop strings over streamed text: hands out text as soon as it cannot be the start of a stop string,
 * never hands out a stop string itself, and never splits a UTF-16 surrogate pair.
 */
export class StopTextFilter {
  private text = '';
  private emitted = 0;
  private readonly holdBack: number;
  /** a stop string has appeared */
  stopped = false;

  constructor(private readonly stops: readonly string[]) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Add decoded text; returns the part that is now safe to show. */
  push(piece: string): string {
    if (this.stopped) return '';
    const searchFrom = Math.max(0, this.emitted - this.holdBack);
    this.text += piece;
    let safe = this.text.length - this.holdBack;
    let stopAt = Infinity;
    for (const s of this.stops) {
      const k = this.text.indexOf(s, searchFrom);
      if (k >= 0) stopAt = Math.min(stopAt, k);
    }
    if (stopAt !== Infinity) {
      // everything before the earliest stop string is final
      this.stopped = true;
      safe = stopAt;
    }
    if (!this.stopped && safe > this.emitted && isHighSurrogate(this.text.charCodeAt(safe - 1))) safe--;
    return this.take(safe);
  }

  /** The sequence ended: whatever was held back and is not a stop string. */
  flush(): string {
    return this.stopped ? '' : this.take(this.text.length);
  }

  /** everything handed out so far */
  get output(): string {
    return this.text.slice(0, this.emitted);
  }

  private take(upTo: number): string {
    if (upTo <= this.emitted) return '';
    const out = this.text.slice(this.emitted, upTo);
    this.emitted = upTo;
    return out;
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

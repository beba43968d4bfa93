/**
 * Lines that must reach an operator whatever tracing says (a server's own
 * faults, refusals past a limit), without letting a flood of them fill a
 * disk or take the CPU: at most `perSecond` lines a second, with a burst of
 * `burst`; what was held back is counted and reported with the next line.
 */
export class RateLimitedLog {
  private readonly write: (line: string) => void;
  private readonly perSecond: number;
  private readonly burst: number;
  private tokens: number;
  private last = Date.now();
  private suppressed = 0;

  constructor(write: (line: string) => void, perSecond = 5, burst = 10) {
    this.write = write;
    this.perSecond = perSecond;
    this.burst = burst;
    this.tokens = burst;
  }

  /** Lines held back since the last one written. */
  get held(): number {
    return this.suppressed;
  }

  /** Writes `line` (built only when it is written) unless the rate is spent; returns whether it was written. */
  log(line: string | (() => string)): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.suppressed++;
      return false;
    }
    this.tokens--;
    const text = typeof line === 'string' ? line : line();
    const note = this.suppressed > 0 ? ` (${this.suppressed} similar lines held back)` : '';
    this.suppressed = 0;
    try {
      this.write(`${text}${note}`);
    } catch {
      // A log that cannot be written (a closed stderr) is never a reason to fail.
    }
    return true;
  }
}

const stderrLine = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * This process's own faults: an exception that is not the peer's doing
 * (a bug), logged with its stack.
 */
export const faults = new RateLimitedLog(stderrLine);

/** Reports an unexpected exception caught at a boundary (a session, a timer, the IPC channel). */
export function reportFault(where: string, err: unknown): void {
  faults.log(() => `vitefa: internal error in ${where}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
}

/**
 * How late this process's timers run: a timer every `periodMs` measures how
 * much later than asked it fired. `lagMs` is the worst of the last
 * `windowMs`, so a process that was busy (a fan-out to 100,000 agents, a
 * large apply, a loaded machine) knows it and allows others that much more
 * silence — the silence it observed was its own.
 */
export class LoopLag {
  private readonly samples: { at: number; lag: number }[] = [];
  private timer?: NodeJS.Timeout;
  private last = 0;
  private readonly periodMs: number;
  private readonly windowMs: number;

  constructor(periodMs = 250, windowMs = 30_000) {
    this.periodMs = periodMs;
    this.windowMs = windowMs;
  }

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.sample(), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Measures now (also called by the failure detector before it judges, so a block just ended counts). */
  sample(): void {
    const now = performance.now();
    const lag = Math.max(0, now - this.last - this.periodMs);
    this.last = now;
    const at = Date.now();
    if (lag > 20) this.samples.push({ at, lag });
    while (this.samples.length > 0 && at - this.samples[0].at > this.windowMs) this.samples.shift();
  }

  get lagMs(): number {
    let worst = 0;
    for (const s of this.samples) worst = Math.max(worst, s.lag);
    return worst;
  }
}

/**
 * SIGUSR2: every server process (primary and workers) writes one line with
 * its memory use to stderr. When Node runs with --expose-gc (for example
 * NODE_OPTIONS=--expose-gc), garbage is collected first, so the figures are
 * what is really held (the harness measures memory per connection this way).
 */
export function reportMemoryOnSignal(describe: () => string, forward: () => void = () => undefined): void {
  process.on('SIGUSR2', () => {
    forward();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const m = process.memoryUsage();
    const kib = (n: number): string => `${Math.round(n / 1024)} KiB`;
    process.stderr.write(
      `vitefa server: ${describe()} pid ${process.pid}: rss ${kib(m.rss)}, heap used ${kib(m.heapUsed)}, external ${kib(m.external)}${gc ? ' (after gc)' : ''}\n`,
    );
  });
}

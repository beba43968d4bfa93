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
    const kib = (n: number): string => `${Math.round(n / 1024)} KiB`;
    try {
      const m = process.memoryUsage();
      process.stderr.write(
        `vitefa server: ${describe()} pid ${process.pid}: rss ${kib(m.rss)}, heap used ${kib(m.heapUsed)}, external ${kib(m.external)}${gc ? ' (after gc)' : ''}\n`,
      );
    } catch (err) {
      // Reading RSS opens /proc/self/stat: a process at its file limit cannot. Never fatal.
      process.stderr.write(`vitefa server: ${describe()} pid ${process.pid}: memory not readable (${(err as Error).message})\n`);
    }
  });
}

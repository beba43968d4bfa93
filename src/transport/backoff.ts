/**
 * How a backoff delay is spread below its ceiling: `full` uniform in
 * [min, ceiling] (many clients retrying at once spread out), `half` uniform
 * in [ceiling / 2, ceiling], `none` the ceiling itself.
 */
export type Jitter = 'full' | 'half' | 'none';

/** Exponential backoff: a ceiling of min * 2^attempt, capped at max, spread by `jitter` (full by default). */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, jitter: Jitter = 'full', random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  switch (jitter) {
    case 'full':
      return minMs + random() * Math.max(0, ceiling - minMs);
    case 'half':
      return ceiling * (0.5 + random() / 2);
    case 'none':
      return ceiling;
    default: {
      const unknown: never = jitter;
      throw new Error(`unknown jitter ${String(unknown)}`);
    }
  }
}

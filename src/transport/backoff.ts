/** Exponential backoff with full jitter: uniform in [min, min * 2^attempt], capped at max. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return minMs + Math.random() * Math.max(0, ceiling - minMs);
}

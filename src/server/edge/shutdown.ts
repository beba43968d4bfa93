/**
 * How long a graceful stop waits for the answers to admin requests under way
 * (a write waiting on its database); a second signal stops at once.
 */
export const WRITES_GRACE_MS = 30_000;

/** What ending a session needs of it. */
export interface EndingSession {
  readonly requestsInFlight: number;
  /** When it last sent an answer (ms since the epoch; 0: never). */
  readonly lastAnswered: number;
  shutDown(): void;
  destroy(reason: string): void;
}

/**
 * Ends every session of a stopping host. `graceful`: each is told
 * SHUTTING_DOWN and its queued frames flush for up to `graceMs` (those
 * waiting for the answer to a request up to WRITES_GRACE_MS, and graceMs
 * after their last answer), then the rest are dropped; `forced`: every
 * socket is dropped at once. `sessions` shrinks as sessions end.
 */
export async function endSessions(sessions: ReadonlySet<EndingSession>, mode: 'graceful' | 'forced', graceMs: number): Promise<void> {
  for (const session of sessions) {
    if (mode === 'forced') session.destroy('server stopped');
    else session.shutDown();
  }
  if (mode === 'forced') return;
  const started = Date.now();
  const waiting = (): boolean => [...sessions].some((s) => s.requestsInFlight > 0 || Date.now() - s.lastAnswered < graceMs);
  while (sessions.size > 0 && Date.now() - started < (waiting() ? WRITES_GRACE_MS : graceMs)) await new Promise((r) => setTimeout(r, 20));
  for (const session of sessions) session.destroy('grace period over');
}

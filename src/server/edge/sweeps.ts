import { WireError } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import type { ServerLimits } from '../limits.js';

/** What a sweep needs of a session. */
export interface SweptSession {
  /** Still logging in. */
  readonly inHandshake: boolean;
  /** When it was accepted (ms since the epoch). */
  readonly since: number;
  fail(status: WireError, message: string): void;
}

/**
 * Every session is looked at (idle, stalled) once in this many one-second
 * sweeps, at most (a third of the shorter timeout, so that each is still
 * kept within a few seconds); those awaiting their hello every second.
 */
const SWEEP_EVERY = 5;

/** In how many one-second sweeps idle and stalled sessions are looked for once. */
export function sweepEvery(limits: Pick<ServerLimits, 'stallTimeoutMs' | 'idleTimeoutMs'>): number {
  return Math.max(1, Math.min(SWEEP_EVERY, Math.floor(Math.min(limits.stallTimeoutMs, limits.idleTimeoutMs) / 3000)));
}

/** How long a session may stay silent: the idle timeout, and for an agent at least three of its pings. */
export function silenceAllowed(idleTimeoutMs: number, pingMs: number): number {
  return Math.max(idleTimeoutMs, 3 * pingMs);
}

/** A session with output waiting: bytes it had taken by then, and since when it has taken nothing more. */
export interface StallMark {
  flushed: number;
  since: number;
}

/**
 * A session with output waiting that takes none of it for `stallTimeoutMs`
 * is a slow consumer; one that reads, however slowly, is not. Returns the
 * mark to keep and whether the session is stalled.
 */
export function stallVerdict(seen: StallMark | undefined, flushed: number, now: number, stallTimeoutMs: number): { mark: StallMark | undefined; stalled: boolean } {
  if (seen === undefined || seen.flushed !== flushed) return { mark: { flushed, since: now }, stalled: false };
  if (now - seen.since > stallTimeoutMs) return { mark: undefined, stalled: true };
  return { mark: seen, stalled: false };
}

/**
 * The login deadline of one port: sessions that have not logged in are
 * looked at every second, and one still logging in `timeoutMs` after its
 * accept is ended with TIMEOUT.
 */
export class LoginDeadline<S extends SweptSession> {
  private readonly waiting = new Set<S>();
  private readonly timeoutMs: number;
  private readonly message: string;

  constructor(timeoutMs: number, message: string) {
    this.timeoutMs = timeoutMs;
    this.message = message;
  }

  add(session: S): void {
    this.waiting.add(session);
  }

  delete(session: S): void {
    this.waiting.delete(session);
  }

  sweep(now: number): void {
    for (const session of this.waiting) {
      try {
        if (!session.inHandshake) this.waiting.delete(session);
        else if (now - session.since > this.timeoutMs) session.fail(WireError.TIMEOUT, this.message);
      } catch (err) {
        reportFault('the login sweep', err);
      }
    }
  }
}

/** What the idle sweep needs of a session. */
export interface WatchedSession extends SweptSession {
  /** When a frame last arrived. */
  readonly lastSeen: number;
  /** The ping interval an agent was last told (0: none). */
  readonly pingMs: number;
  readonly writableLength: number;
  readonly bytesWritten: number;
}

/**
 * Idle and stalled sessions, looked for every few seconds (with 100,000
 * sessions a look at each costs milliseconds): one silent for longer than
 * it may be is ended with TIMEOUT, one that takes none of its waiting
 * output for stallTimeoutMs with SLOW_CONSUMER.
 */
export class IdleSweep<S extends WatchedSession> {
  private readonly limits: Pick<ServerLimits, 'stallTimeoutMs' | 'idleTimeoutMs'>;
  private readonly stalls = new Map<S, StallMark>();
  private sweeps = 0;

  constructor(limits: Pick<ServerLimits, 'stallTimeoutMs' | 'idleTimeoutMs'>) {
    this.limits = limits;
  }

  /** The session ended. */
  forget(session: S): void {
    this.stalls.delete(session);
  }

  /** Called every second; looks at `sessions` once in sweepEvery() calls. */
  sweep(sessions: Iterable<S>, now: number): void {
    if (this.sweeps++ % sweepEvery(this.limits) !== 0) return;
    for (const session of sessions) {
      try {
        const silentFor = silenceAllowed(this.limits.idleTimeoutMs, session.pingMs);
        if (now - session.lastSeen > silentFor) {
          session.fail(WireError.TIMEOUT, `nothing received for ${silentFor} ms`);
        } else if (session.writableLength > 0) {
          this.checkStall(session, now);
        } else {
          this.stalls.delete(session);
        }
      } catch (err) {
        reportFault('the session sweep', err);
      }
    }
  }

  private checkStall(session: S, now: number): void {
    const { mark, stalled } = stallVerdict(this.stalls.get(session), session.bytesWritten - session.writableLength, now, this.limits.stallTimeoutMs);
    if (mark === undefined) this.stalls.delete(session);
    else this.stalls.set(session, mark);
    if (stalled) session.fail(WireError.SLOW_CONSUMER, `nothing of ${session.writableLength} bytes waiting was read for ${this.limits.stallTimeoutMs} ms`);
  }
}

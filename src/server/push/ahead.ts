import type { Subscription } from './subscriptions.js';

/** Agents still ahead are reported again this often (a read that failed is tried again). */
const BEHIND_AGAIN_MS = 5_000;

/** Agents' environments waiting for this server to catch up, at most (beyond, they are served from what it has). */
const MAX_AHEAD = 1_000_000;

/** An agent's environment held at a revision this server has not applied yet. */
export interface Ahead {
  sub: Subscription;
  env: string;
  rev: number;
  /** When it began to wait (ms since the epoch). */
  since: number;
}

/**
 * Agents that hold more than this server has applied (committed through
 * another server sharing the store): they are sent nothing older, and wait
 * until this server has caught up — or until a read of the store that
 * started after they arrived has completed, when the store's state is the
 * truth (it was restored from an older copy). `onBehind` asks the server to
 * read the store: once per revision when agents arrive, again every
 * BEHIND_AGAIN_MS while some still wait.
 */
export class AheadWaits {
  private waiting: Ahead[] = [];
  private behindReported = 0;
  private behindAt = 0;
  /** Start of the latest read of the store that completed. */
  private storeReadAt = 0;

  constructor(private readonly onBehind: ((rev: number) => void) | undefined) {}

  /** `sub` waits with `env` at `rev`; false when too many wait already (the caller serves it from what it has). */
  add(sub: Subscription, env: string, rev: number, now: number): boolean {
    if (this.waiting.length >= MAX_AHEAD) return false;
    this.waiting.push({ sub, env, rev, since: now });
    // Once per revision, not once per agent: a storm of agents ahead is one catch-up.
    if (rev > this.behindReported) {
      this.behindReported = rev;
      this.behindAt = now;
      this.onBehind?.(rev);
    }
    return true;
  }

  /** A read of the store that started at `startedAt` has completed: agents that arrived before it may be served. */
  storeRead(startedAt: number): void {
    this.storeReadAt = Math.max(this.storeReadAt, startedAt);
  }

  /**
   * Hands `serve` every wait this server can now answer: its revision
   * reached (`head`), or confirmed by a read of the store (`confirmed`:
   * the store holds nothing newer, so the agent gets what this server has).
   * Waits of subscriptions no longer `current` are dropped.
   */
  release(head: number, now: number, current: (sub: Subscription) => boolean, serve: (a: Ahead, confirmed: boolean) => void): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    let highest = 0;
    for (const a of waiting) {
      if (!current(a.sub)) continue; // gone, or subscribed again since
      const confirmed = a.since <= this.storeReadAt;
      if (a.rev <= head || confirmed) {
        serve(a, confirmed);
      } else {
        this.waiting.push(a);
        highest = Math.max(highest, a.rev);
      }
    }
    if (highest > 0 && now - this.behindAt > BEHIND_AGAIN_MS) {
      this.behindAt = now;
      this.onBehind?.(highest);
    }
  }
}

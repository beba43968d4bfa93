import { LIMIT_DEFAULTS, type ServerLimits } from '../limits.js';

/**
 * Which logins may be checked now. Failed logins cost the attempts after
 * them, counted under several keys, each a bucket that holds `burst`
 * failures and lets one out every `intervalMs`:
 *
 * - an account name from one source address (an IPv6 /64 counts as one):
 *   steep — the attacker's own pair;
 * - password logins from one source address, whatever the name: an address
 *   that tries many names;
 * - token and peer logins from one source address: their secrets are 256
 *   random bits, so no name is counted (a token id is public, and naming it
 *   must not keep its agents out); this bounds what failures cost;
 * - an account name from every address: gentle — it only makes an attempt
 *   wait, at most `waitMs`, so the owner always gets in from an address of
 *   their own, whatever others try.
 *
 * An attempt holds a place in each of its buckets from its admission until
 * its outcome (so a burst of parallel attempts cannot outrun the count); a
 * failure keeps it, a success or an attempt given up returns it. A success
 * forgets its own pair's failures, never its address's or its name's (a
 * login that works does not open the door to guesses about other names).
 *
 * An attempt that may not be checked now is told how long to wait, never
 * held: a wait caused by the name alone comes with a pass, so that the same
 * address trying the same name after its wait is checked then. The primary
 * of a cluster holds the one throttle of its server: workers ask it.
 */
export interface LoginAttempt {
  /** The source address (or IPv6 /64) the attempt comes from. */
  source: string;
  /** The account name of a password login; absent for a token's or a peer's (counted by address only). */
  name?: string;
}

export type Admission =
  | { admitted: true; ticket: number }
  | { admitted: false; retryMs: number; message: string };

/** How an admitted attempt ended: `abandoned` when the session closed before its proof. */
export type LoginOutcome = 'ok' | 'failed' | 'abandoned';

/** What decides whether a login may be checked: the throttle itself, or (in a cluster worker) the primary's. */
export interface LoginGate {
  admit(attempt: LoginAttempt): Admission | Promise<Admission>;
  /** Ends an admitted attempt (its ticket); a ticket settled twice or unknown is ignored. */
  settle(ticket: number, outcome: LoginOutcome): void;
}

/** A bucket: `burst` failures held at most, one let out every `intervalMs`; `waitMs` caps the wait it imposes (the name's). */
export interface BucketRule {
  burst: number;
  intervalMs: number;
  waitMs?: number;
}

export interface ThrottleRules {
  pair: BucketRule;
  address: BucketRule;
  secrets: BucketRule;
  name: BucketRule & { waitMs: number };
}

export function throttleRules(limits: ServerLimits = LIMIT_DEFAULTS): ThrottleRules {
  return {
    pair: { burst: limits.loginPairBurst, intervalMs: limits.loginPairIntervalMs },
    address: { burst: limits.loginAddressBurst, intervalMs: limits.loginAddressIntervalMs },
    secrets: { burst: limits.loginTokenBurst, intervalMs: limits.loginTokenIntervalMs },
    name: { burst: limits.loginNameBurst, intervalMs: limits.loginNameIntervalMs, waitMs: limits.loginNameWaitMs },
  };
}

/**
 * An attempt refused only because others in its buckets are in flight waits
 * this long, and up to as long again at random (those are settled within
 * milliseconds; the spread keeps parallel clients from colliding again).
 */
const BUSY_RETRY_MS = 200;
/** A pass (after a wait for the name) is good this long after its wait. */
const PASS_MS = 10_000;
/** An attempt not settled after this long (the process holding it went away) is given back. */
const TICKET_MS = 120_000;
/** Buckets and passes kept at most (the least recently changed go first). */
const MAX_ENTRIES = 100_000;
const MAX_PASSES = 10_000;

interface Bucket {
  /** When the bucket will be empty (ms since the epoch): a failure adds `intervalMs` to it. */
  until: number;
  /** Attempts admitted and not yet settled. */
  inFlight: number;
}

interface Ticket {
  at: number;
  keys: [key: string, rule: BucketRule][];
}

const WHY = {
  pair: 'too many failed logins of this name from this address',
  address: 'too many failed logins from this address',
  secrets: 'too many failed logins from this address',
  name: 'failed logins of this name from many addresses slow its logins down',
  busy: 'too many logins from this address at once',
} as const;

export class LoginThrottle implements LoginGate {
  private readonly rules: ThrottleRules;
  private readonly clock: () => number;
  private readonly buckets = new Map<string, Bucket>();
  /** Address + name pairs that waited for the name and may now be checked without waiting again. */
  private readonly passes = new Map<string, { from: number; until: number }>();
  private readonly tickets = new Map<number, Ticket>();
  private nextTicket = 1;

  constructor(rules: ThrottleRules = throttleRules(), clock: () => number = Date.now) {
    this.rules = rules;
    this.clock = clock;
  }

  /** Buckets held now (for tests and the memory bound). */
  get size(): number {
    return this.buckets.size;
  }

  admit(attempt: LoginAttempt): Admission {
    const now = this.clock();
    this.expire(now);
    const { rules } = this;
    const pairKey = attempt.name === undefined ? undefined : `p:${attempt.source}\n${attempt.name}`;
    const keys: [string, BucketRule, keyof typeof WHY][] = pairKey === undefined
      ? [[`t:${attempt.source}`, rules.secrets, 'secrets']]
      : [[pairKey, rules.pair, 'pair'], [`a:${attempt.source}`, rules.address, 'address']];
    let worst: { ms: number; why: keyof typeof WHY } | undefined;
    for (const [key, rule, why] of keys) {
      const wait = this.wait(key, rule, now);
      if (wait !== undefined && (worst === undefined || wait.ms > worst.ms)) worst = { ms: wait.ms, why: wait.busy ? 'busy' : why };
    }
    if (worst !== undefined) return refusal(worst.ms, WHY[worst.why]);
    const held: [string, BucketRule][] = keys.map(([key, rule]) => [key, rule]);
    if (attempt.name !== undefined && pairKey !== undefined) {
      const nameKey = `n:${attempt.name}`;
      const pass = this.passes.get(pairKey);
      if (pass !== undefined && now < pass.until) {
        if (now < pass.from) return refusal(pass.from - now, WHY.name);
        this.passes.delete(pairKey);
      } else {
        const wait = this.wait(nameKey, rules.name, now);
        if (wait !== undefined) {
          const ms = Math.min(rules.name.waitMs, wait.ms);
          this.passes.delete(pairKey);
          this.passes.set(pairKey, { from: now + ms, until: now + ms + PASS_MS });
          if (this.passes.size > MAX_PASSES) this.passes.delete(this.passes.keys().next().value!);
          return refusal(ms, WHY.name);
        }
      }
      held.push([nameKey, rules.name]);
    }
    for (const [key] of held) {
      const bucket = this.buckets.get(key) ?? { until: 0, inFlight: 0 };
      bucket.inFlight++;
      this.keep(key, bucket);
    }
    const ticket = this.nextTicket++;
    this.tickets.set(ticket, { at: now, keys: held });
    return { admitted: true, ticket };
  }

  settle(ticket: number, outcome: LoginOutcome): void {
    const held = this.tickets.get(ticket);
    if (held === undefined) return;
    this.tickets.delete(ticket);
    const now = this.clock();
    for (const [key, rule] of held.keys) {
      const bucket = this.buckets.get(key);
      if (bucket === undefined) continue; // dropped by the bound meanwhile
      bucket.inFlight = Math.max(0, bucket.inFlight - 1);
      if (outcome === 'failed') {
        // Capped, so that an attacker's failures (the name's, admitted after a wait) cannot push it out of reach.
        bucket.until = Math.min(Math.max(bucket.until, now) + rule.intervalMs, now + rule.burst * rule.intervalMs + (rule.waitMs ?? 0));
      } else if (outcome === 'ok' && key.startsWith('p:')) {
        bucket.until = 0;
      }
      if (bucket.inFlight === 0 && bucket.until <= now) this.buckets.delete(key);
      else this.keep(key, bucket);
    }
  }

  /** How long an attempt counted under `key` must wait, or undefined when it may go now. */
  private wait(key: string, rule: BucketRule, now: number): { ms: number; busy: boolean } | undefined {
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return undefined;
    const debt = Math.max(0, bucket.until - now);
    if (bucket.inFlight === 0 && debt === 0) {
      this.buckets.delete(key);
      return undefined;
    }
    const full = rule.burst * rule.intervalMs;
    if (debt + (bucket.inFlight + 1) * rule.intervalMs <= full) return undefined;
    // Its failures alone fill the bucket: until one has leaked out. Otherwise attempts in flight do: until they end.
    if (debt + rule.intervalMs > full) return { ms: Math.ceil(debt + rule.intervalMs - full), busy: false };
    return { ms: BUSY_RETRY_MS + Math.floor(Math.random() * BUSY_RETRY_MS), busy: true };
  }

  /** Stores a bucket as the most recently changed; beyond the bound the least recently changed goes. */
  private keep(key: string, bucket: Bucket): void {
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > MAX_ENTRIES) this.buckets.delete(this.buckets.keys().next().value!);
  }

  private expire(now: number): void {
    for (const [ticket, held] of this.tickets) {
      if (now - held.at < TICKET_MS) break;
      this.settle(ticket, 'abandoned');
    }
    for (const [key, pass] of this.passes) {
      if (pass.until > now) break;
      this.passes.delete(key);
    }
  }
}

function refusal(ms: number, why: string): Admission {
  const retryMs = Math.max(100, Math.ceil(ms));
  return { admitted: false, retryMs, message: `${why}: try again in ${waitText(retryMs)}` };
}

/** 0.5 s, 2 s, 58 s, 3 min. */
export function waitText(ms: number): string {
  if (ms < 10_000) return `${Math.ceil(ms / 100) / 10} s`;
  if (ms < 120_000) return `${Math.ceil(ms / 1000)} s`;
  return `${Math.ceil(ms / 60_000)} min`;
}

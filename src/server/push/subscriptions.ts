import type { WireError } from '../../protocol/index.js';
import { granted, type Grants } from '../access/grants.js';

/** The part of a connection the fan-out needs: where to write, and how to end it. */
export interface AgentLink {
  readonly id: string;
  readonly addr: string;
  readonly since: number;
  /** Bytes queued in the socket and not yet taken by the kernel. */
  readonly writableLength: number;
  /** Bytes handed to the socket since it opened (sent or queued). */
  readonly bytesWritten: number;
  write(frame: Buffer): void;
  /** Sends an error frame with this status and closes the connection. */
  fail(status: WireError, message: string): void;
}

/** What one agent follows and has acknowledged, and what it still waits for. */
export interface Subscription {
  link: AgentLink;
  all: boolean;
  /** What the agent's token grants; with `all`, only these are sent. */
  grants: Grants;
  /** Environments followed, with the revision acknowledged (0 until the first ack). */
  acked: Map<string, number>;
  /** The chain value the agent holds at its acknowledged revision, per environment (when it said). */
  chains?: Map<string, string>;
  /** When it last acknowledged anything, or subscribed (ms since the epoch). */
  ackedAt: number;
  /** `bytesWritten` of the link when its latest catch-up had been written. */
  catchUpEnd: number;
  /** Releases published up to this number were in the state its subscription's catch-up was taken from. */
  caughtUpTo: number;
  /**
   * While snapshots it was to get are still being built: the frames meant
   * for it since (written once they are, after them), and how many it waits for.
   */
  hold?: { frames: Buffer[]; bytes: number; waiting: number };
}

/** Distinct chain values kept as shared strings, at most (beyond, the table starts afresh). */
const INTERNED_CHAINS_AT_MOST = 4096;

/**
 * Which agent follows which environment: by name, or everything its token
 * grants. A subscription is current while it is the one registered for its
 * link (an agent that subscribes again gets a new one).
 */
export class Subscriptions {
  /** Agents following an environment by name; kept while the environment is deleted and created again. */
  private readonly byEnv = new Map<string, Set<Subscription>>();
  private readonly followAll = new Set<Subscription>();
  private readonly byLink = new Map<AgentLink, Subscription>();
  /** Chain values are shared strings: 100,000 agents acknowledging one release hold one copy. */
  private readonly chainStrings = new Map<string, string>();

  get size(): number {
    return this.byLink.size;
  }

  get(link: AgentLink): Subscription | undefined {
    return this.byLink.get(link);
  }

  /** `sub` is still the subscription of its link (not gone, not replaced by a new one). */
  current(sub: Subscription): boolean {
    return this.byLink.get(sub.link) === sub;
  }

  all(): IterableIterator<Subscription> {
    return this.byLink.values();
  }

  /** Agents following everything they are granted. */
  followingAll(): ReadonlySet<Subscription> {
    return this.followAll;
  }

  /** Agents following `env` by name. */
  byName(env: string): ReadonlySet<Subscription> | undefined {
    return this.byEnv.get(env);
  }

  /** Registers a new subscription of `link` (the caller has removed any earlier one). */
  add(link: AgentLink, all: boolean, grants: Grants, published: number, now: number): Subscription {
    const sub: Subscription = { link, all, grants, acked: new Map(), ackedAt: now, catchUpEnd: 0, caughtUpTo: published };
    this.byLink.set(link, sub);
    if (all) this.followAll.add(sub);
    return sub;
  }

  /** `sub` follows `env`, holding revision `rev`. */
  follow(sub: Subscription, env: string, rev: number): void {
    sub.acked.set(env, rev);
    if (sub.all) return;
    let set = this.byEnv.get(env);
    if (set === undefined) this.byEnv.set(env, (set = new Set()));
    set.add(sub);
  }

  remove(link: AgentLink): void {
    const sub = this.byLink.get(link);
    if (sub === undefined) return;
    this.byLink.delete(link);
    this.followAll.delete(sub);
    if (sub.all) return;
    for (const env of sub.acked.keys()) {
      const set = this.byEnv.get(env);
      if (set === undefined) continue;
      set.delete(sub);
      if (set.size === 0) this.byEnv.delete(env);
    }
  }

  /** Records what an agent has applied: only for environments it follows (`exists`: the environment is live here). */
  ack(link: AgentLink, env: string, rev: number, chain: string | undefined, exists: boolean, now: number): void {
    const sub = this.byLink.get(link);
    if (sub === undefined) return;
    if (!(sub.acked.has(env) || (sub.all && exists && granted(sub.grants, env)))) return;
    sub.acked.set(env, rev);
    sub.ackedAt = now;
    if (chain !== undefined && chain !== '') (sub.chains ??= new Map()).set(env, this.intern(chain));
    else sub.chains?.delete(env);
  }

  /** Every agent to send a release of `env` to now: those following it by name, and those following all it is granted to. */
  followers(env: string): Subscription[] {
    const subs = this.byEnv.get(env);
    const targets: Subscription[] = subs === undefined ? [] : [...subs];
    if (this.followAll.size > 0) {
      // Grants are checked once per distinct grant list (agents of one token share it), not once per agent.
      const allowed = new Map<Grants, boolean>();
      for (const sub of this.followAll) {
        let ok = allowed.get(sub.grants);
        if (ok === undefined) allowed.set(sub.grants, (ok = granted(sub.grants, env)));
        if (ok) targets.push(sub);
      }
    }
    return targets;
  }

  /** `env` was dropped: agents following it by name go on following it (from revision 0); with `gone`, the others forget it. */
  dropped(env: string, gone: boolean): void {
    const subs = this.byEnv.get(env);
    if (subs !== undefined) for (const sub of subs) sub.acked.set(env, 0);
    if (gone) for (const sub of this.followAll) sub.acked.delete(env);
  }

  intern(chain: string): string {
    const known = this.chainStrings.get(chain);
    if (known !== undefined) return known;
    if (this.chainStrings.size >= INTERNED_CHAINS_AT_MOST) this.chainStrings.clear();
    this.chainStrings.set(chain, chain);
    return chain;
  }
}

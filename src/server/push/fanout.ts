import { MessageType, encodeMessage, ProtocolError, WireError, type AgentInfo, type EnvAgents, type EnvRev } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { granted, type Grants } from '../access/grants.js';
import type { PublishedRelease, ServerState } from '../releases/state.js';

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

interface Subscription {
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

export interface FanoutOptions {
  /**
   * An agent with more than this many bytes queued, beyond the catch-up it
   * was last sent, when a frame goes out is disconnected.
   */
  agentBufferBytes: number;
  /** Environments that do not exist one agent may follow by name (each is held for the session's life). */
  absentEnvsPerAgent: number;
  /**
   * Set when other servers share the store: an agent holding a revision
   * this server has not applied is sent nothing older; this is called so
   * the server reads the store, and the agent is served once the server has
   * caught up — or, when a read of the store that started after the agent
   * arrived finds it still ahead (the store was restored from an older
   * copy), from what the store holds (`storeRead`).
   */
  onBehind?: (rev: number) => void;
  /**
   * Sockets written in one slice of a fan-out; between slices the event
   * loop serves everything else (admins' answers, acknowledgements, new
   * sessions). Default FANOUT_SLICE.
   */
  slice?: number;
}

/** Sockets written per slice of a fan-out (about 2–5 ms of work on this hardware). */
export const FANOUT_SLICE = 256;

/** One environment's releases of a pass, being written to the agents that followed it when the pass began. */
interface Batch {
  frame: Buffer;
  /** The releases one by one, for an agent whose catch-up had the first of them (the batch's prev is not what it holds). */
  joined: Buffer;
  /** The number of the batch's first release. */
  first: number;
  /** The number of the batch's last release: agents that subscribed after it was published are skipped. */
  last: number;
  targets: Subscription[];
  next: number;
}

/** Agents still ahead are reported again this often (a read that failed is tried again). */
const BEHIND_AGAIN_MS = 5_000;

interface Ahead {
  sub: Subscription;
  env: string;
  rev: number;
  since: number;
}

/**
 * Which agent follows which environment, and the push of each release to
 * them: the frame is encoded once and the same Buffer written to every
 * subscribed socket. An agent that does not keep up is cut off with
 * SLOW_CONSUMER (it resumes from its revision when it reconnects) so that it
 * never holds up the others. What it was sent to catch up (perhaps a large
 * snapshot) does not count against it: only what piles up behind that.
 */
export class Fanout {
  private readonly state: ServerState;
  private readonly options: FanoutOptions;
  /** Agents following an environment by name; kept while the environment is deleted and created again. */
  private readonly byEnv = new Map<string, Set<Subscription>>();
  private readonly followAll = new Set<Subscription>();
  private readonly byLink = new Map<AgentLink, Subscription>();
  /** Admin sessions watching an environment. */
  private readonly watchers = new Map<string, Set<AgentLink>>();
  /** Agents disconnected for being slow, for status and the harness. */
  slowDisconnects = 0;
  private readonly queued = new Map<string, { releases: PublishedRelease[]; first: number; last: number }>();
  /** Releases published so far (each is applied to the state before it is published). */
  private published = 0;
  /** Agents waiting for this server to reach what they hold. */
  private ahead: Ahead[] = [];
  private behindReported = 0;
  private behindAt = 0;
  /** Start of the latest read of the store that completed. */
  private storeReadAt = 0;
  /** The pass being written, batch by batch; releases published meanwhile wait in `queued` for the next one. */
  private pass: Batch[] = [];
  private stepScheduled = false;
  private readonly slice: number;

  constructor(state: ServerState, options: FanoutOptions) {
    this.state = state;
    this.options = options;
    this.slice = options.slice ?? FANOUT_SLICE;
  }

  get size(): number {
    return this.byLink.size;
  }

  /**
   * Registers what `link` follows and sends it what it lacks: for each
   * environment, the releases after the revision it holds, or a snapshot.
   */
  subscribe(link: AgentLink, all: boolean, held: EnvRev[], grants: Grants = ['*']): void {
    if (!all) {
      let absent = 0;
      for (const h of held) if (!this.state.has(h.env)) absent++;
      if (absent > this.options.absentEnvsPerAgent) {
        throw new ProtocolError(WireError.LIMIT_EXCEEDED, `a subscription may name at most ${this.options.absentEnvsPerAgent} environments that do not exist, got ${absent}`);
      }
    }
    this.unsubscribe(link);
    if (link.writableLength > this.options.agentBufferBytes) {
      // Asking again for what it has not read yet: it is not reading.
      this.slow(link);
      return;
    }
    const sub: Subscription = { link, all, grants, acked: new Map(), ackedAt: Date.now(), catchUpEnd: 0, caughtUpTo: this.published };
    this.byLink.set(link, sub);
    const heldBy = new Map(held.map((h) => [h.env, h.rev]));
    const chainOf = new Map<string, string>();
    for (const h of held) if (h.chain !== undefined && h.chain !== '') chainOf.set(h.env, this.intern(h.chain));
    if (chainOf.size > 0) sub.chains = chainOf;
    if (all) {
      this.followAll.add(sub);
      for (const env of this.state.names()) if (!heldBy.has(env) && granted(grants, env)) heldBy.set(env, 0);
    }
    for (const [env, rev] of heldBy) {
      if (all && !this.state.has(env) && rev === 0) continue;
      sub.acked.set(env, rev);
      if (!all) {
        let set = this.byEnv.get(env);
        if (set === undefined) this.byEnv.set(env, (set = new Set()));
        set.add(sub);
      }
      this.catchUp(sub, env, rev, undefined, chainOf.get(env));
    }
    sub.catchUpEnd = link.bytesWritten;
  }

  /** Chain values are shared strings: 100,000 agents acknowledging one release hold one copy. */
  private readonly chainStrings = new Map<string, string>();
  private intern(chain: string): string {
    const known = this.chainStrings.get(chain);
    if (known !== undefined) return known;
    if (this.chainStrings.size >= 4096) this.chainStrings.clear();
    this.chainStrings.set(chain, chain);
    return chain;
  }

  unsubscribe(link: AgentLink): void {
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

  /** Records what an agent has applied: only for environments it follows (others would grow the map without bound). */
  ack(link: AgentLink, env: string, rev: number, chain?: string): void {
    const sub = this.byLink.get(link);
    if (sub === undefined) return;
    if (!(sub.acked.has(env) || (sub.all && this.state.has(env) && granted(sub.grants, env)))) return;
    sub.acked.set(env, rev);
    sub.ackedAt = Date.now();
    if (chain !== undefined && chain !== '') (sub.chains ??= new Map()).set(env, this.intern(chain));
    else sub.chains?.delete(env);
  }

  /**
   * Queues a release for its subscribers. A fan-out goes in passes: a pass
   * takes every release queued, joins the frames of each environment into
   * one Buffer, and writes it to every agent following it, `slice` sockets
   * at a time, yielding to the event loop between slices — an admin's
   * answer, an acknowledgement, a new session never wait for the whole
   * fan-out. Releases published during a pass go out together in the next
   * one: a burst costs one write per agent per pass, not one per release.
   * Passes never overlap, so every agent gets its releases in order.
   */
  publish(release: PublishedRelease): void {
    const env = release.message.env;
    const n = ++this.published;
    const queued = this.queued.get(env);
    if (queued === undefined) this.queued.set(env, { releases: [release], first: n, last: n });
    else {
      queued.releases.push(release);
      queued.last = n;
    }
    this.schedule();
  }

  /** Writes everything queued and the pass in progress now, in one go. */
  flush(): void {
    this.step(Number.POSITIVE_INFINITY);
  }

  /** Whether a pass is being written or releases wait for one. */
  get busy(): boolean {
    return this.pass.length > 0 || this.queued.size > 0;
  }

  private schedule(): void {
    if (this.stepScheduled) return;
    this.stepScheduled = true;
    setImmediate(() => {
      this.stepScheduled = false;
      this.step(this.slice);
    });
  }

  /** Writes up to `budget` sockets of the pass in progress, beginning the next pass when one ends. */
  private step(budget: number): void {
    try {
      while (budget > 0) {
        const batch = this.pass[0];
        if (batch === undefined) {
          if (this.queued.size === 0) break;
          this.beginPass();
          continue;
        }
        const end = Math.min(batch.targets.length, batch.next + budget);
        budget -= end - batch.next;
        while (batch.next < end) {
          const sub = batch.targets[batch.next++]!;
          // Gone or subscribed again since the pass began, or caught up past it: its catch-up had these releases.
          if (this.byLink.get(sub.link) !== sub || sub.caughtUpTo >= batch.last) continue;
          this.send(sub, sub.caughtUpTo >= batch.first ? batch.joined : batch.frame);
        }
        if (batch.next >= batch.targets.length) this.pass.shift();
      }
    } finally {
      if (this.busy) this.schedule();
      else this.serveAhead();
    }
  }

  /** Takes every queued release into a new pass: the agents to write are those following each environment now. */
  private beginPass(): void {
    const queued = [...this.queued];
    this.queued.clear();
    for (const [env, { releases, first, last: n }] of queued) {
      const joined = releases.length === 1 ? releases[0]!.frame : Buffer.concat(releases.map((r) => r.frame));
      const last = releases[releases.length - 1]!.message;
      const frame = releases.length > 1 && releases.every((r) => r.message.drop !== true) ? mergedFrame(releases) : joined;
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
      this.pass.push({ frame, joined, first, last: n, targets, next: 0 });
      const watching = this.watchers.get(env);
      // Admins watching get every release as it was committed.
      if (watching !== undefined) for (const link of watching) this.sendToWatcher(link, joined);
      if (releases.some((r) => r.message.drop === true)) {
        // Agents following it by name go on following it: if it is created again, they get it from revision 0.
        if (subs !== undefined) for (const sub of subs) sub.acked.set(env, 0);
        if (last.drop === true) for (const sub of this.followAll) sub.acked.delete(env);
      }
    }
  }

  /** An admin session follows the releases of `env` as they are published (`watch`). */
  watch(link: AgentLink, env: string): void {
    let set = this.watchers.get(env);
    if (set === undefined) this.watchers.set(env, (set = new Set()));
    set.add(link);
  }

  /** Stops watching `env`, or everything. */
  unwatch(link: AgentLink, env?: string): void {
    for (const [name, set] of env === undefined ? this.watchers : [[env, this.watchers.get(env)] as const]) {
      if (set === undefined) continue;
      set.delete(link);
      if (set.size === 0) this.watchers.delete(name);
    }
  }

  private sendToWatcher(link: AgentLink, frame: Buffer): void {
    if (link.writableLength > this.options.agentBufferBytes) {
      link.fail(WireError.SLOW_CONSUMER, `more than ${this.options.agentBufferBytes} bytes waiting to be read`);
      return;
    }
    link.write(frame);
  }

  /** The first `max` agents (following `env`, of id `id`), with what they acknowledged and how long ago. */
  agents(env: string | undefined, max: number, id?: string, now = Date.now()): AgentInfo[] {
    const out: AgentInfo[] = [];
    for (const sub of this.byLink.values()) {
      if (out.length >= max) break;
      if (env !== undefined && !sub.acked.has(env)) continue;
      if (id !== undefined && sub.link.id !== id) continue;
      const envs: EnvRev[] = [];
      for (const [e, rev] of sub.acked) {
        if (envs.length >= MAX_ENVS_PER_AGENT_IN_STATUS) break;
        if (env !== undefined && e !== env) continue;
        const chain = sub.chains?.get(e);
        envs.push(chain === undefined ? { env: e, rev } : { env: e, rev, chain });
      }
      out.push({ id: sub.link.id, addr: sub.link.addr, since: sub.link.since, envs, ackedMs: Math.max(0, now - sub.ackedAt) });
    }
    return out;
  }

  /**
   * Serves the agents that held more than this server had, once it has
   * caught up, or once a read of the store that started after they arrived
   * has completed (then the store's state is the truth). Called after each
   * flush and once a second.
   */
  serveAhead(now = Date.now()): void {
    if (this.ahead.length === 0) return;
    const waiting = this.ahead;
    this.ahead = [];
    let highest = 0;
    for (const a of waiting) {
      if (this.byLink.get(a.sub.link) !== a.sub) continue; // gone, or subscribed again since
      const confirmed = a.since <= this.storeReadAt;
      if (a.rev <= this.state.head || confirmed) {
        this.catchUp(a.sub, a.env, a.rev, confirmed);
        a.sub.catchUpEnd = a.sub.link.bytesWritten;
      } else {
        this.ahead.push(a);
        highest = Math.max(highest, a.rev);
      }
    }
    if (highest > 0 && now - this.behindAt > BEHIND_AGAIN_MS) {
      this.behindAt = now;
      this.options.onBehind?.(highest);
    }
  }

  /** A read of the store that started at `startedAt` has completed: agents that arrived before it are served. */
  storeRead(startedAt: number): void {
    this.storeReadAt = Math.max(this.storeReadAt, startedAt);
    this.serveAhead();
  }

  /**
   * Per environment: how many agents hold each revision (what they have
   * acknowledged, or held when they subscribed), and the first `cap` agents
   * behind the environment's current revision. Counts, not lists: this runs
   * over 100,000 agents in a few milliseconds and answers in a few bytes.
   */
  revisions(env: string | undefined, server: string, cap: number): EnvAgents[] {
    type Counting = EnvAgents & { counts: Map<string, [number, number, string]> };
    const byEnv = new Map<string, Counting>();
    const entry = (name: string): Counting | undefined => {
      let e = byEnv.get(name);
      if (e === undefined) {
        const rev = this.state.rev(name);
        if (rev === undefined) return undefined;
        e = { env: name, rev, chain: this.state.chain(name) ?? '', holders: [], lagging: [], laggingTotal: 0, counts: new Map() };
        const released = this.state.appliedAt(name);
        if (released !== undefined) e.releasedMs = Math.max(0, Date.now() - released);
        byEnv.set(name, e);
      }
      return e;
    };
    for (const sub of this.byLink.values()) {
      for (const [name, rev] of sub.acked) {
        if (env !== undefined && name !== env) continue;
        const e = entry(name);
        if (e === undefined) continue;
        // By revision and chain: agents of another history at the same revision are counted apart (a fork shows).
        const chain = sub.chains?.get(name) ?? '';
        const key = `${rev}\u0000${chain}`;
        const held = e.counts.get(key);
        if (held === undefined) e.counts.set(key, [rev, 1, chain]);
        else held[1]++;
        if (rev < e.rev) {
          e.laggingTotal++;
          if (e.lagging.length < cap) e.lagging.push({ id: sub.link.id, addr: sub.link.addr, server, rev });
        }
      }
    }
    return [...byEnv.values()].map(({ counts, ...e }) => ({ ...e, holders: [...counts.values()].sort((a, b) => b[0] - a[0] || b[1] - a[1]) }));
  }

  private catchUp(sub: Subscription, env: string, rev: number, backwards = this.options.onBehind === undefined, chain?: string): void {
    const link = sub.link;
    const need = this.state.catchUp(env, rev, backwards, chain);
    switch (need.kind) {
      case 'current':
        return;
      case 'releases':
        for (const frame of need.frames) link.write(frame);
        return;
      case 'snapshot':
        link.write(need.frame);
        return;
      case 'building': {
        // Written when built; whatever is meant for this agent meanwhile waits behind it.
        sub.hold ??= { frames: [], bytes: 0, waiting: 0 };
        sub.hold.waiting++;
        need.ready.then(
          (frame) => this.built(sub, env, need.rev, frame),
          (err: unknown) => {
            reportFault('building a snapshot', err);
            if (this.byLink.get(link) === sub) link.fail(WireError.INTERNAL, 'the snapshot could not be built');
          },
        );
        return;
      }
      case 'gone':
        // The agent holds an environment that no longer exists: tell it to drop it.
        if (rev > 0) link.write(dropFrame(env, rev, this.state.head));
        return;
      case 'ahead':
        // Nothing older than what it holds: it is served once this server has caught up.
        if (this.ahead.length >= MAX_AHEAD) {
          this.catchUp(sub, env, rev, true);
          return;
        }
        this.ahead.push({ sub, env, rev, since: Date.now() });
        // Once per revision, not once per agent: a storm of agents ahead is one catch-up.
        if (rev > this.behindReported) {
          this.behindReported = rev;
          this.behindAt = Date.now();
          this.options.onBehind?.(rev);
        }
        return;
      default: {
        const unknown: never = need;
        throw new Error(`unknown catch-up ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** A snapshot `sub` waited for is built: it goes out, then the releases after it, then what was held. */
  private built(sub: Subscription, env: string, rev: number, frame: Buffer): void {
    const link = sub.link;
    const hold = sub.hold;
    if (this.byLink.get(link) !== sub || hold === undefined) return;
    link.write(frame);
    // From the snapshot's revision to now (perhaps another build, if the state moved far meanwhile).
    this.catchUp(sub, env, rev, true);
    if (--hold.waiting > 0) return;
    sub.hold = undefined;
    for (const held of hold.frames) link.write(held);
    sub.catchUpEnd = link.bytesWritten;
  }

  private send(sub: Subscription, frame: Buffer): void {
    const link = sub.link;
    if (sub.hold !== undefined) {
      sub.hold.frames.push(frame);
      sub.hold.bytes += frame.length;
      if (sub.hold.bytes > this.options.agentBufferBytes) this.slow(link);
      return;
    }
    // The link sends in order: of what is queued, the catch-up's unsent part comes first.
    const flushed = link.bytesWritten - link.writableLength;
    const catchUpQueued = Math.max(0, sub.catchUpEnd - flushed);
    if (link.writableLength - catchUpQueued > this.options.agentBufferBytes) {
      this.slow(link);
      return;
    }
    link.write(frame);
  }

  private slow(link: AgentLink): void {
    this.slowDisconnects++;
    link.fail(WireError.SLOW_CONSUMER, `more than ${this.options.agentBufferBytes} bytes waiting to be read`);
  }
}

/** Agents' environments waiting for this server to catch up, at most (beyond, they are served from what it has). */
const MAX_AHEAD = 1_000_000;

/** Environments listed per agent in `status` (an answer must stay within a client's limits). */
const MAX_ENVS_PER_AGENT_IN_STATUS = 100;

/**
 * Several releases of one environment, in order, as one release from the
 * first's `prev` to the last's `rev` carrying each key's final value (op
 * `batch`): an agent holding `prev` applies it as it would the releases one
 * by one, and a burst of a hundred costs it one message, not a hundred.
 */
function mergedFrame(releases: PublishedRelease[]): Buffer {
  const first = releases[0]!.message;
  const last = releases[releases.length - 1]!.message;
  const changes = new Map<string, string | null>();
  for (const r of releases) for (const [key, after] of r.message.changes) changes.set(key, after);
  const authors = new Set(releases.map((r) => r.message.author));
  return encodeMessage({
    t: MessageType.Release, env: last.env, rev: last.rev, prev: first.prev, time: last.time,
    author: authors.size === 1 ? last.author : [...authors].slice(0, 8).join(', ').slice(0, 1024), op: 'batch', changes: [...changes],
    // The batch follows what its first release follows and ends where its last one does.
    ...(last.chain === undefined ? {} : { chain: last.chain }),
    ...(first.pchain === undefined ? {} : { pchain: first.pchain }),
  });
}

function dropFrame(env: string, held: number, head: number): Buffer {
  return encodeMessage({
    t: MessageType.Release, env, rev: Math.max(head, held + 1), prev: held, time: Date.now(),
    author: 'server', op: 'env.del', changes: [], drop: true,
  });
}

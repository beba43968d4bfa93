import { ProtocolError, WireError, type AgentInfo, type EnvAgents, type EnvRev } from '../../protocol/index.js';
import { granted, type Grants } from '../access/grants.js';
import type { PublishedRelease, ServerState } from '../releases/state.js';
import { AgentWriter } from './agent-writer.js';
import { AheadWaits } from './ahead.js';
import { agentsOf, revisionsOf } from './agent-status.js';
import { GROUP_END_FRAME } from './groups.js';
import { FANOUT_SLICE, Passes } from './passes.js';
import { Subscriptions, type AgentLink, type Subscription } from './subscriptions.js';
import { Watchers } from './watchers.js';

export type { AgentLink } from './subscriptions.js';
export { FANOUT_SLICE } from './passes.js';

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

/**
 * Which agent follows which environment, and the push of each release to
 * them: the frame is encoded once and the same Buffer written to every
 * subscribed socket. An agent that does not keep up is cut off with
 * SLOW_CONSUMER (it resumes from its revision when it reconnects) so that it
 * never holds up the others. What it was sent to catch up (perhaps a large
 * snapshot) does not count against it: only what piles up behind that.
 *
 * This class puts the parts together: the subscriptions (subscriptions.ts),
 * what is written to one agent and when (agent-writer.ts), the passes of
 * the push (passes.ts), agents waiting for this server to catch up
 * (ahead.ts), admins watching (watchers.ts) and the counts for `status`
 * (agent-status.ts).
 */
export class Fanout {
  private readonly state: ServerState;
  private readonly options: FanoutOptions;
  private readonly subs = new Subscriptions();
  private readonly watchers: Watchers;
  private readonly ahead: AheadWaits;
  private readonly writer: AgentWriter;
  private readonly passes: Passes;

  constructor(state: ServerState, options: FanoutOptions) {
    this.state = state;
    this.options = options;
    this.watchers = new Watchers(options.agentBufferBytes);
    this.ahead = new AheadWaits(options.onBehind);
    this.writer = new AgentWriter(state, this.subs, this.ahead, options.agentBufferBytes, options.onBehind !== undefined);
    this.passes = new Passes(this.subs, this.watchers, this.writer, options.slice ?? FANOUT_SLICE, () => this.serveAhead());
  }

  get size(): number {
    return this.subs.size;
  }

  /** Agents disconnected for being slow, for status and the harness. */
  get slowDisconnects(): number {
    return this.writer.slowDisconnects;
  }

  /**
   * Registers what `link` follows and sends it what it lacks: for each
   * environment, the releases after the revision it holds, or a snapshot;
   * then a GroupEnd if releases of a group were among them (an agent
   * catching up with several environments of one revision applies them
   * together).
   */
  subscribe(link: AgentLink, all: boolean, held: EnvRev[], grants: Grants = ['*']): void {
    if (!all) {
      let absent = 0;
      for (const h of held) if (!this.state.has(h.env)) absent++;
      if (absent > this.options.absentEnvsPerAgent) {
        throw new ProtocolError(WireError.LIMIT_EXCEEDED, `a subscription may name at most ${this.options.absentEnvsPerAgent} environments that do not exist, got ${absent}`);
      }
    }
    this.subs.remove(link);
    if (link.writableLength > this.options.agentBufferBytes) {
      // Asking again for what it has not read yet: it is not reading.
      this.writer.slow(link);
      return;
    }
    const sub = this.subs.add(link, all, grants, this.passes.published, Date.now());
    const heldBy = new Map(held.map((h) => [h.env, h.rev]));
    const chainOf = new Map<string, string>();
    for (const h of held) if (h.chain !== undefined && h.chain !== '') chainOf.set(h.env, this.subs.intern(h.chain));
    if (chainOf.size > 0) sub.chains = chainOf;
    if (all) {
      for (const env of this.state.names()) if (!heldBy.has(env) && granted(grants, env)) heldBy.set(env, 0);
    }
    let grouped = false;
    for (const [env, rev] of heldBy) {
      if (all && !this.state.has(env) && rev === 0) continue;
      this.subs.follow(sub, env, rev);
      if (this.writer.catchUp(sub, env, rev, undefined, chainOf.get(env))) grouped = true;
    }
    if (grouped) link.write(GROUP_END_FRAME);
    sub.catchUpEnd = link.bytesWritten;
  }

  unsubscribe(link: AgentLink): void {
    this.subs.remove(link);
  }

  /** Records what an agent has applied: only for environments it follows (others would grow the map without bound). */
  ack(link: AgentLink, env: string, rev: number, chain?: string): void {
    this.subs.ack(link, env, rev, chain, this.state.has(env), Date.now());
  }

  /** Queues a release for its subscribers, to go out in the next pass (passes.ts). */
  publish(release: PublishedRelease): void {
    this.passes.publish(release);
  }

  /** Writes everything queued and the pass in progress now, in one go. */
  flush(): void {
    this.passes.flush();
  }

  /** Whether a pass is being written or releases wait for one. */
  get busy(): boolean {
    return this.passes.busy;
  }

  /** An admin session follows the releases of `env` as they are published (`watch`). */
  watch(link: AgentLink, env: string): void {
    this.watchers.watch(link, env);
  }

  /** Stops watching `env`, or everything. */
  unwatch(link: AgentLink, env?: string): void {
    this.watchers.unwatch(link, env);
  }

  /** The first `max` agents (following `env`, of id `id`), with what they acknowledged and how long ago. */
  agents(env: string | undefined, max: number, id?: string, now = Date.now()): AgentInfo[] {
    return agentsOf(this.subs.all(), env, max, id, now);
  }

  /**
   * Serves the agents that held more than this server had, once it has
   * caught up, or once a read of the store that started after they arrived
   * has completed (then the store's state is the truth). Called after each
   * flush and once a second.
   */
  serveAhead(now = Date.now()): void {
    // One GroupEnd per agent, after every environment of it served now.
    const grouped = new Set<Subscription>();
    this.ahead.release(this.state.head, now, (sub) => this.subs.current(sub), (a, confirmed) => {
      if (this.writer.catchUp(a.sub, a.env, a.rev, confirmed)) grouped.add(a.sub);
      a.sub.catchUpEnd = a.sub.link.bytesWritten;
    });
    for (const sub of grouped) {
      sub.link.write(GROUP_END_FRAME);
      sub.catchUpEnd = sub.link.bytesWritten;
    }
  }

  /** A read of the store that started at `startedAt` has completed: agents that arrived before it are served. */
  storeRead(startedAt: number): void {
    this.ahead.storeRead(startedAt);
    this.serveAhead();
  }

  /** Per environment, how many agents hold each revision, and the first `cap` behind (agent-status.ts). */
  revisions(env: string | undefined, server: string, cap: number): EnvAgents[] {
    return revisionsOf(this.subs.all(), this.state, env, server, cap, Date.now());
  }
}

import type { AgentInfo, EnvAgents, EnvRev } from '../../protocol/index.js';
import type { ServerState } from '../releases/state.js';
import type { Subscription } from './subscriptions.js';

/** Environments listed per agent in `status` (an answer must stay within a client's limits). */
const MAX_ENVS_PER_AGENT_IN_STATUS = 100;

/** The first `max` agents (following `env`, of id `id`), with what they acknowledged and how long ago (at `now`). */
export function agentsOf(subs: Iterable<Subscription>, env: string | undefined, max: number, id: string | undefined, now: number): AgentInfo[] {
  const out: AgentInfo[] = [];
  for (const sub of subs) {
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
 * Per environment: how many agents hold each revision (what they have
 * acknowledged, or held when they subscribed), and the first `cap` agents
 * behind the environment's current revision. Counts, not lists: this runs
 * over 100,000 agents in a few milliseconds and answers in a few bytes.
 */
export function revisionsOf(
  subs: Iterable<Subscription>, state: ServerState, env: string | undefined, server: string, cap: number, now: number,
): EnvAgents[] {
  type Counting = EnvAgents & { counts: Map<string, [number, number, string]> };
  const byEnv = new Map<string, Counting>();
  const entry = (name: string): Counting | undefined => {
    let e = byEnv.get(name);
    if (e === undefined) {
      const rev = state.rev(name);
      if (rev === undefined) return undefined;
      e = { env: name, rev, chain: state.chain(name) ?? '', holders: [], lagging: [], laggingTotal: 0, counts: new Map() };
      const released = state.appliedAt(name);
      if (released !== undefined) e.releasedMs = Math.max(0, now - released);
      byEnv.set(name, e);
    }
    return e;
  };
  for (const sub of subs) {
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

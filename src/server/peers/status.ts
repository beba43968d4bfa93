import type { ClusterStatus, EnvAgents, LocalStatus, ServerRow } from '../../protocol/index.js';
import { Membership } from './membership.js';

/**
 * The cluster's part of `status`: what each server reports, added up.
 */

/** Lagging agents named per environment in `status`, at most. */
export const LAGGING_SHOWN = 20;

/** Agents `status --agent` lists at most (an id is meant to name one host; a shared one still gives a bounded answer). */
export const FOUND_AT_MOST = 100;

/** A server this one can ask for its own part of `status`. */
export interface StatusPeer {
  status(env: string | undefined, agent?: string): Promise<LocalStatus>;
}

export interface ClusterStatusInput {
  membership: Membership;
  /** Links up now, by the id of the server behind each. */
  peers: ReadonlyMap<string, StatusPeer>;
  /** The revision this server has applied, and the highest any server has (read once the answers are in). */
  applied: () => number;
  head: () => number;
  /** This server's own part. */
  local: LocalStatus;
  env: string | undefined;
  agent?: string;
  now: number;
}

/** Every server as this one sees it, and the agents' revisions of all of them (each server that is up asked; one that does not answer shows as gossiped). */
export async function clusterStatus(input: ClusterStatusInput): Promise<ClusterStatus> {
  const { membership, peers, local, env, agent, now } = input;
  const self = membership.self;
  const views = membership.others().sort((a, b) => (a.entry.id < b.entry.id ? -1 : 1));
  const answers = await Promise.all(views.map(async (v) => {
    const peer = peers.get(v.entry.id);
    if (peer === undefined || v.health === 'dead' || v.entry.state === 'left') return undefined;
    return peer.status(env, agent).catch(() => undefined);
  }));
  const head = input.head();
  const applied = input.applied();
  const servers: ServerRow[] = [
    { id: self.id, gen: self.gen, state: self.state, addrs: self.addrs, head: applied, lag: head - applied, agents: local.agentsTotal, heardMs: 0, answered: true },
    ...views.map((v, i) => {
      const answer = answers[i];
      const theirs = answer?.head ?? v.entry.head;
      return {
        id: v.entry.id, gen: v.entry.gen, state: Membership.shownState(v), addrs: v.entry.addrs, head: theirs, lag: Math.max(0, head - theirs),
        agents: answer?.agentsTotal ?? v.entry.agents, heardMs: Math.max(0, now - v.heardAt), answered: answer !== undefined,
      };
    }),
  ];
  const parts = [local.envs, ...answers.filter((a): a is LocalStatus => a !== undefined).map((a) => a.envs)];
  const out: ClusterStatus = { head, servers, envs: mergeRevisions(parts, LAGGING_SHOWN) };
  if (agent !== undefined) {
    out.found = [
      ...(local.found ?? []).map((a) => ({ ...a, server: self.id })),
      ...views.flatMap((v, i) => (answers[i]?.found ?? []).map((a) => ({ ...a, server: v.entry.id }))),
    ].slice(0, FOUND_AT_MOST);
  }
  return out;
}

/**
 * Adds up the agents' revisions of several parts (worker processes, or
 * servers): counts summed per revision, lagging agents concatenated up to
 * `cap`. An environment's current revision is the highest any part reports.
 */
export function mergeRevisions(parts: EnvAgents[][], cap = LAGGING_SHOWN): EnvAgents[] {
  interface Merged { rev: number; chain: string; releasedMs?: number; counts: Map<string, [number, number, string]>; lagging: EnvAgents['lagging']; laggingTotal: number }
  const byEnv = new Map<string, Merged>();
  for (const part of parts) {
    for (const e of part) {
      let m = byEnv.get(e.env);
      if (m === undefined) byEnv.set(e.env, (m = { rev: e.rev, chain: e.chain ?? '', counts: new Map(), lagging: [], laggingTotal: 0 }));
      // The chain and age of the newest revision any part has applied.
      if (e.rev > m.rev || (e.rev === m.rev && m.chain === '')) m.chain = e.chain ?? '';
      if (e.rev > m.rev) m.releasedMs = e.releasedMs;
      else if (e.rev === m.rev && e.releasedMs !== undefined) m.releasedMs = Math.min(m.releasedMs ?? e.releasedMs, e.releasedMs);
      m.rev = Math.max(m.rev, e.rev);
      for (const [rev, n, chain] of e.holders) {
        const key = `${rev}\u0000${chain}`;
        const held = m.counts.get(key);
        if (held === undefined) m.counts.set(key, [rev, n, chain]);
        else held[1] += n;
      }
      m.laggingTotal += e.laggingTotal;
      for (const a of e.lagging) if (m.lagging.length < cap) m.lagging.push(a);
    }
  }
  return [...byEnv].sort(([a], [b]) => (a < b ? -1 : 1)).map(([env, m]) => {
    // A part that had not applied the newest revision counted against its own: recount against the cluster's.
    const holders = [...m.counts.values()].sort((a, b) => b[0] - a[0] || b[1] - a[1]);
    const behind = holders.filter(([rev]) => rev < m.rev).reduce((n, [, k]) => n + k, 0);
    return {
      env,
      rev: m.rev,
      chain: m.chain,
      ...(m.releasedMs === undefined ? {} : { releasedMs: m.releasedMs }),
      holders,
      lagging: m.lagging.filter((a) => a.rev < m.rev),
      laggingTotal: Math.max(behind, 0),
    };
  });
}

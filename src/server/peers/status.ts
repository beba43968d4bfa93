import type { EnvAgents } from '../../protocol/index.js';

/** Lagging agents named per environment in `status`, at most. */
export const LAGGING_SHOWN = 20;

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

import type { EnvAgents } from '../../protocol/index.js';

/** Lagging agents named per environment in `status`, at most. */
export const LAGGING_SHOWN = 20;

/**
 * Adds up the agents' revisions of several parts (worker processes, or
 * servers): counts summed per revision, lagging agents concatenated up to
 * `cap`. An environment's current revision is the highest any part reports.
 */
export function mergeRevisions(parts: EnvAgents[][], cap = LAGGING_SHOWN): EnvAgents[] {
  const byEnv = new Map<string, { rev: number; counts: Map<number, number>; lagging: EnvAgents['lagging']; laggingTotal: number }>();
  for (const part of parts) {
    for (const e of part) {
      let m = byEnv.get(e.env);
      if (m === undefined) byEnv.set(e.env, (m = { rev: e.rev, counts: new Map(), lagging: [], laggingTotal: 0 }));
      m.rev = Math.max(m.rev, e.rev);
      for (const [rev, n] of e.holders) m.counts.set(rev, (m.counts.get(rev) ?? 0) + n);
      m.laggingTotal += e.laggingTotal;
      for (const a of e.lagging) if (m.lagging.length < cap) m.lagging.push(a);
    }
  }
  return [...byEnv].sort(([a], [b]) => (a < b ? -1 : 1)).map(([env, m]) => {
    // A part that had not applied the newest revision counted against its own: recount against the cluster's.
    const holders = [...m.counts].sort((a, b) => b[0] - a[0]);
    const behind = holders.filter(([rev]) => rev < m.rev).reduce((n, [, k]) => n + k, 0);
    return {
      env,
      rev: m.rev,
      holders,
      lagging: m.lagging.filter((a) => a.rev < m.rev),
      laggingTotal: Math.max(behind, 0),
    };
  });
}

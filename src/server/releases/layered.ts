import type { KeyChange } from '../../protocol/index.js';
import { flatten, hasMarks, mergedChanges, mergedView, ownLayer, type OwnSource } from '../model/layers/index.js';
import type { StoredRelease } from '../store/types.js';
import { ChainBroken } from './chain-broken.js';

/** What the layered views need of each live environment. */
export interface LayeredEnv {
  /** The merged view: what agents hold. */
  values: Map<string, string>;
  /** The own entries (own texts): the same Map as `values` while the environment stands alone. */
  own: Map<string, string>;
  /** Its parents, lowest first ([]: none). */
  parents: string[];
  /** Own entries that carry unset marks. */
  marks: number;
}

/** Whether an environment's merged view is its own entries: no parents, and no entry of it hides anything. */
export function standsAlone(live: Pick<LayeredEnv, 'parents' | 'marks'>): boolean {
  return live.parents.length === 0 && live.marks === 0;
}

/** The marks an own text adds to an environment's count (own.ts). */
export function marksOf(text: string | null | undefined): number {
  return text !== null && text !== undefined && hasMarks(text) ? 1 : 0;
}

/** Own entries read from the live environments (mergedChanges' source). */
export function ownSource(envs: ReadonlyMap<string, LayeredEnv>): OwnSource {
  return {
    own: (env, key) => envs.get(env)?.own.get(key),
    keys: (env) => envs.get(env)?.own.keys() ?? [],
  };
}

/** The merged view of `env` from the own entries of its layers (at load, and when it stops standing alone). */
export function buildView(env: string, envs: ReadonlyMap<string, LayeredEnv>, parentsOf: ReadonlyMap<string, readonly string[]>): Map<string, string> {
  return mergedView(flatten(env, parentsOf).map((name) => ownLayer(name, envs.get(name)?.own)));
}

/**
 * The merged changes a release brings, for its environment and each environment built on it: as
 * its committer worked them out (`merged`, `group`), or worked out here from the own entries held
 * (a release read from the store). An environment with no parents and nothing built on it, whose
 * new own texts carry no mark, changes each key's view to its new own value: nothing is computed.
 */
export function viewChanges(
  stored: StoredRelease, envs: ReadonlyMap<string, LayeredEnv>, parentsOf: ReadonlyMap<string, readonly string[]>, hasDependents: boolean,
): Map<string, KeyChange[]> {
  const live = envs.get(stored.env);
  // The committer's rule (ops/layer-plan.ts): no parents, nothing built on it, no mark among the new own texts.
  const plain = !hasDependents && stored.parents === undefined && (live === undefined || live.parents.length === 0) && !stored.changes.some(([, , after]) => marksOf(after) > 0);
  if (stored.merged !== undefined || plain) {
    const out = new Map<string, KeyChange[]>([[stored.env, stored.merged ?? stored.changes]]);
    for (const r of stored.group ?? []) out.set(r.env, r.merged ?? []);
    return out;
  }
  return mergedChanges(parentsOf, ownSource(envs), {
    env: stored.env,
    changes: stored.changes.map(([key, , after]) => [key, after] as const),
    ...(stored.parents === undefined ? {} : { parents: stored.parents }),
  });
}

/** A release read from the store that came through a layer: this server made it already when it applied that layer's; it must agree. */
export function checkVia(live: { rev: number; chain: string } | undefined, stored: StoredRelease, head: number): void {
  if (live === undefined || stored.chain === undefined || stored.chain === '') return;
  if (live.rev === stored.rev && live.chain !== '' && live.chain !== stored.chain) {
    throw new ChainBroken(stored.env, stored.rev, live.chain, live.chain, stored.chain,
      `the store holds ${stored.env}@${stored.rev} through ${stored.via} with chain value ${stored.chain}, but this server's layers gave ${live.chain}`);
  }
  if (live.rev < stored.rev && head >= stored.rev) {
    throw new ChainBroken(stored.env, stored.rev, live.chain, '(no release)', stored.chain,
      `the store holds ${stored.env}@${stored.rev} through ${stored.via}, but this server's layers changed nothing in ${stored.env} there`);
  }
}

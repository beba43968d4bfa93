import type { KeyChange } from '../../../protocol/index.js';
import { ownEntry } from './own.js';
import { dependentsOf, flatten, type ParentMap } from './parents.js';
import { mergedKey, type Layer, type OwnEntry } from './views.js';

/** Where the own entries before a write are read from: a store's view under its lock, or a server's memory. */
export interface OwnSource {
  /** The own text (own.ts) of `key` in `env` before the write. */
  own(env: string, key: string): string | undefined;
  /** Every key `env` holds an own entry for (read only when a parent list changes). */
  keys(env: string): Iterable<string>;
}

/** One write to one environment's layer: its own entries' new texts, and its new parent list when that changes. */
export interface LayerWrite {
  env: string;
  /** [key, own text after, or null when the entry is removed]. */
  changes: readonly (readonly [string, string | null])[];
  parents?: readonly string[];
}

/** The parent lists with `env`'s replaced. */
export function withParents(parentsOf: ParentMap, env: string, parents: readonly string[]): Map<string, readonly string[]> {
  const next = new Map(parentsOf);
  if (parents.length === 0) next.delete(env);
  else next.set(env, parents);
  return next;
}

/**
 * What a write does to the merged views: for the written environment and every environment built
 * on it (dependentsOf, sorted by name), the keys whose merged text changes, as [key, before, after]
 * (null: absent). Environments whose view does not change are left out; the written one comes first.
 *
 * Only the keys the write touches can change — every key of the layers involved when the parent
 * list changes. Each dependent's view is computed from the own entries of its own layers, so no
 * dependent waits for another. Throws merge.ts's RangeError on values nested past its guard.
 */
export function mergedChanges(parentsOf: ParentMap, source: OwnSource, write: LayerWrite): Map<string, KeyChange[]> {
  const written = new Map<string, string | null>();
  for (const [key, text] of write.changes) written.set(key, text);
  const after = write.parents === undefined ? parentsOf : withParents(parentsOf, write.env, write.parents);
  const involved = [write.env, ...dependentsOf(write.env, parentsOf).filter((e) => e !== write.env)];
  const cache = new Map<string, Map<string, OwnEntry | undefined>>();
  const entryOf = (env: string, key: string, afterWrite: boolean): OwnEntry | undefined => {
    if (afterWrite && env === write.env && written.has(key)) {
      const text = written.get(key);
      return text === null || text === undefined ? undefined : ownEntry(text);
    }
    let byKey = cache.get(env);
    if (byKey === undefined) cache.set(env, (byKey = new Map<string, OwnEntry | undefined>()));
    if (byKey.has(key)) return byKey.get(key);
    const text = source.own(env, key);
    const entry = text === undefined ? undefined : ownEntry(text);
    byKey.set(key, entry);
    return entry;
  };
  const layer = (env: string, afterWrite: boolean): Layer => ({
    env,
    entries: { get: (key: string) => entryOf(env, key, afterWrite) } as unknown as ReadonlyMap<string, OwnEntry>,
  });
  const out = new Map<string, KeyChange[]>();
  for (const env of involved) {
    const namesBefore = flatten(env, parentsOf);
    const namesAfter = write.parents === undefined ? namesBefore : flatten(env, after);
    let keys: Iterable<string> = written.keys();
    if (write.parents !== undefined) {
      const all = new Set<string>(written.keys());
      for (const name of new Set([...namesBefore, ...namesAfter])) for (const key of source.keys(name)) all.add(key);
      keys = [...all].sort();
    }
    const before = namesBefore.map((name) => layer(name, false));
    const next = namesAfter.map((name) => layer(name, true));
    const changes: KeyChange[] = [];
    for (const key of keys) {
      const was = mergedKey(key, before) ?? null;
      const now = mergedKey(key, next) ?? null;
      if (was !== now) changes.push([key, was, now]);
    }
    if (changes.length > 0 || env === write.env) out.set(env, changes);
  }
  return out;
}

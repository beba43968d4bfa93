/**
 * mergedChanges, the changes a write makes to every view built on the written layer, against the
 * definition: each view's merged value of each key before and after the write, from mergedKey.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dependentsOf, flatten, mergedChanges, mergedKey, ownEntry, ownText, type Layer, type OwnEntry } from '../../src/server/model/layers/index.js';
import { mulberry32, int, pick, chance, type Rng } from '../support/fuzz.js';

const KEYS = ['a', 'b', 'c'];
const VALUES = ['1', '"s"', 'null', '[1]', '[2,1]', '{"x":1}', '{"x":{"y":[1]}}', '{"replace":[3]}', '{"y":2}'];

function randomOwn(rng: Rng): string | undefined {
  if (chance(rng, 0.4)) return undefined;
  const text = chance(rng, 0.8) ? pick(rng, VALUES) : undefined;
  const unset = chance(rng, 0.25) ? [chance(rng, 0.5) ? [] : ['x']] : undefined;
  return ownText({ ...(text === undefined ? {} : { text }), ...(unset === undefined ? {} : { unset }) });
}

function viewOf(env: string, key: string, parents: Map<string, string[]>, own: Map<string, Map<string, string>>): string | null {
  const layers: Layer[] = flatten(env, parents).map((name) => ({
    env: name,
    entries: new Map<string, OwnEntry>([...(own.get(name) ?? new Map<string, string>())].map(([k, t]) => [k, ownEntry(t)])),
  }));
  return mergedKey(key, layers) ?? null;
}

test('mergedChanges gives, for each view built on the written layer, exactly the keys whose merged value changes', () => {
  for (let seed = 1; seed <= 400; seed++) {
    const rng = mulberry32(seed);
    const names = Array.from({ length: 2 + int(rng, 6) }, (_, i) => `e${i}`);
    const parents = new Map<string, string[]>();
    // Parents only among earlier names: no cycle.
    names.forEach((name, i) => {
      const list = names.slice(0, i).filter(() => chance(rng, 0.4));
      if (list.length > 0) parents.set(name, list);
    });
    const own = new Map(names.map((name) => [name, new Map<string, string>()]));
    for (const name of names) for (const key of KEYS) {
      const text = randomOwn(rng);
      if (text !== undefined) own.get(name)!.set(key, text);
    }
    const env = pick(rng, names);
    const changes: [string, string | null][] = KEYS.filter(() => chance(rng, 0.6)).map((key) => [key, randomOwn(rng) ?? null]);
    const got = mergedChanges(parents, { own: (e, k) => own.get(e)?.get(k), keys: (e) => own.get(e)?.keys() ?? [] }, { env, changes });
    const afterOwn = new Map([...own].map(([name, m]) => [name, new Map(m)]));
    for (const [key, text] of changes) {
      if (text === null) afterOwn.get(env)!.delete(key);
      else afterOwn.get(env)!.set(key, text);
    }
    for (const name of [env, ...dependentsOf(env, parents)]) {
      const want = changes.map(([key]) => key).filter((key, i, all) => all.indexOf(key) === i)
        .map((key) => [key, viewOf(name, key, parents, own), viewOf(name, key, parents, afterOwn)] as const)
        .filter(([, was, now]) => was !== now);
      assert.deepEqual(got.get(name) ?? [], want, `seed ${seed}, view ${name}`);
    }
  }
});

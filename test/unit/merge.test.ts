import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearValue, jsonEqual, mergeValue, type Json } from '../../src/server/model/merge.js';

// Frozen inputs make any write to them throw (ESM is strict mode), proving no mutation.
function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

function nested(levels: number): Json {
  let v: Json = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

type MergeCase = { name: string; before: Json | undefined; patch: Json; after: Json };

const mergeCases: MergeCase[] = [
  { name: 'object over object merges key by key', before: { a: 1, b: 2 }, patch: { b: 3, c: 4 }, after: { a: 1, b: 3, c: 4 } },
  { name: 'object over object recurses', before: { a: { x: 1, y: { p: 1 } } }, patch: { a: { y: { q: 2 } } }, after: { a: { x: 1, y: { p: 1, q: 2 } } } },
  { name: 'scalar over object replaces', before: { a: { x: 1 } }, patch: { a: 5 }, after: { a: 5 } },
  { name: 'scalar over array replaces', before: { a: [1, 2] }, patch: { a: 's' }, after: { a: 's' } },
  { name: 'scalar over scalar replaces', before: { a: true }, patch: { a: false }, after: { a: false } },
  { name: 'scalar over root object replaces', before: { a: 1 }, patch: 7, after: 7 },
  { name: 'object over scalar replaces', before: { a: 'x' }, patch: { a: { on: true } }, after: { a: { on: true } } },
  { name: 'object over array replaces', before: { a: [1] }, patch: { a: { k: 1 } }, after: { a: { k: 1 } } },
  { name: 'array over object replaces', before: { a: { k: 1 } }, patch: { a: [1, 2] }, after: { a: [1, 2] } },
  { name: 'array over scalar replaces', before: { a: 3 }, patch: { a: [3] }, after: { a: [3] } },
  { name: 'array union keeps order, appends new', before: ['a', 'b'], patch: ['c', 'b', 'd'], after: ['a', 'b', 'c', 'd'] },
  { name: 'array union is strict: 2 and "2" differ', before: [2], patch: ['2', 2], after: [2, '2'] },
  { name: 'array union: item twice in patch appended once', before: [1], patch: [2, 2, { a: 1 }, { a: 1 }], after: [1, 2, { a: 1 }] },
  { name: 'array union: existing duplicates stay', before: [1, 1], patch: [1, 2], after: [1, 1, 2] },
  { name: 'array union: object key order irrelevant', before: [{ a: 1, b: 2 }], patch: [{ b: 2, a: 1 }], after: [{ a: 1, b: 2 }] },
  { name: 'array union: nested arrays compared deeply', before: [[1, 2]], patch: [[1, 2], [2, 1]], after: [[1, 2], [2, 1]] },
  { name: 'array union: null, true and 0 are distinct', before: [null], patch: [0, false, null, ''], after: [null, 0, false, ''] },
  {
    name: 'nested arrays of objects',
    before: { svc: [{ id: 1, tags: ['a'] }] },
    patch: { svc: [{ id: 1, tags: ['a'] }, { id: 2 }] },
    after: { svc: [{ id: 1, tags: ['a'] }, { id: 2 }] },
  },
  {
    name: 'array item equal except nested tags is appended, not merged',
    before: { svc: [{ id: 1, tags: ['a'] }] },
    patch: { svc: [{ id: 1, tags: ['b'] }] },
    after: { svc: [{ id: 1, tags: ['a'] }, { id: 1, tags: ['b'] }] },
  },
  { name: 'replace form at the root over an array', before: [1, 2], patch: { replace: [3] }, after: [3] },
  { name: 'replace form at the root over an object', before: { a: 1 }, patch: { replace: [] }, after: [] },
  { name: 'replace form at the root with before undefined', before: undefined, patch: { replace: ['x'] }, after: ['x'] },
  { name: 'replace form at depth over an array', before: { a: { b: { c: [1, 2] } } }, patch: { a: { b: { c: { replace: [9] } } } }, after: { a: { b: { c: [9] } } } },
  { name: 'replace form over a scalar', before: { a: 'x' }, patch: { a: { replace: [1] } }, after: { a: [1] } },
  { name: 'replace form over an object', before: { a: { replace: [0], k: 1 } }, patch: { a: { replace: [1] } }, after: { a: [1] } },
  { name: 'replace form over a missing key', before: { b: 1 }, patch: { a: { replace: [1] } }, after: { b: 1, a: [1] } },
  { name: 'replace form inside an object replacing a scalar', before: { a: 1 }, patch: { a: { b: { replace: [2] } } }, after: { a: { b: [2] } } },
  { name: 'replace with a non-array value is an ordinary object', before: { a: [1] }, patch: { a: { replace: 5 } }, after: { a: { replace: 5 } } },
  { name: 'replace with a second key is an ordinary object', before: { a: 1 }, patch: { a: { replace: [1], x: 1 } }, after: { a: { replace: [1], x: 1 } } },
  { name: 'replace form inside an array item is stored as written', before: [1], patch: [{ replace: [2] }], after: [1, { replace: [2] }] },
  { name: 'null on the right stores null', before: { a: { b: 1 }, c: 2 }, patch: { a: null }, after: { a: null, c: 2 } },
  { name: 'null at the root stores null', before: [1], patch: null, after: null },
  { name: 'object over null replaces', before: { a: null }, patch: { a: { b: 1 } }, after: { a: { b: 1 } } },
  { name: 'key missing on the left is created', before: { a: 1 }, patch: { b: { c: [1] } }, after: { a: 1, b: { c: [1] } } },
  { name: 'before undefined: patch object stored', before: undefined, patch: { a: { b: [1] } }, after: { a: { b: [1] } } },
  { name: 'before undefined: scalar stored', before: undefined, patch: 'v', after: 'v' },
  { name: 'before undefined: array stored', before: undefined, patch: [1, 1], after: [1, 1] },
  { name: '__proto__ key is stored as data', before: {}, patch: JSON.parse('{"__proto__":{"x":1}}') as Json, after: JSON.parse('{"__proto__":{"x":1}}') as Json },
];

for (const c of mergeCases) {
  test(`merge: ${c.name}`, () => {
    const before = deepFreeze(structuredClone(c.before));
    const patch = deepFreeze(structuredClone(c.patch));
    const after = mergeValue(before, patch);
    assert.deepStrictEqual(after, c.after);
    assert.deepStrictEqual(before, c.before);
    assert.deepStrictEqual(patch, c.patch);
  });
}

type ClearCase = { name: string; before: Json; args: string[]; after: Json | undefined; changed: boolean };

const clearCases: ClearCase[] = [
  { name: 'no path deletes the whole key', before: { a: 1 }, args: [], after: undefined, changed: true },
  { name: 'key on the root object', before: { a: 1, b: 2 }, args: ['a'], after: { b: 2 }, changed: true },
  { name: 'key at depth', before: { a: { b: { c: 1, d: 2 } } }, args: ['a', 'b', 'c'], after: { a: { b: { d: 2 } } }, changed: true },
  { name: 'JSON array of keys on an object', before: { a: 1, b: 2, c: 3 }, args: ['["a","c","zz"]'], after: { b: 2 }, changed: true },
  { name: 'a key spelled like a JSON array wins', before: { '["a"]': 1, a: 2 }, args: ['["a"]'], after: { a: 2 }, changed: true },
  { name: 'emptied parent object is kept', before: { db: { port: 1 } }, args: ['db', 'port'], after: { db: {} }, changed: true },
  { name: 'last key of the root object leaves {}', before: { a: 1 }, args: ['a'], after: {}, changed: true },
  { name: 'plain word value from an array', before: { xs: ['p', 'q'] }, args: ['xs', 'q'], after: { xs: ['p'] }, changed: true },
  { name: 'every occurrence is removed', before: { xs: [1, 2, 1, 3, 1] }, args: ['xs', '1'], after: { xs: [2, 3] }, changed: true },
  { name: '2 removes the number only', before: { xs: [2, '2'] }, args: ['xs', '2'], after: { xs: ['2'] }, changed: true },
  { name: '"2" removes the string only', before: { xs: [2, '2'] }, args: ['xs', '"2"'], after: { xs: [2] }, changed: true },
  { name: 'object value, key order irrelevant', before: { xs: [{ a: 1, b: 2 }, { a: 2 }] }, args: ['xs', '{"b":2,"a":1}'], after: { xs: [{ a: 2 }] }, changed: true },
  { name: 'nested array value via [[..]]', before: { xs: [[1, 2], 3] }, args: ['xs', '[[1,2]]'], after: { xs: [3] }, changed: true },
  { name: 'values from the root array', before: ['a', 'b'], args: ['a'], after: ['b'], changed: true },
  { name: 'emptied root array deletes the key', before: ['a', 'a'], args: ['a'], after: undefined, changed: true },
  { name: 'emptied array removed, emptied parent object kept', before: { a: { xs: ['p'] } }, args: ['a', 'xs', 'p'], after: { a: {} }, changed: true },
  { name: 'emptied array inside an array is cut out', before: { m: [['x'], ['y']] }, args: ['m', '0', 'x'], after: { m: [['y']] }, changed: true },
  { name: 'only the emptied array goes, not its emptied parent array', before: { m: [['x']] }, args: ['m', '0', 'x'], after: { m: [] }, changed: true },
  { name: 'array index path into an object', before: { svc: [{ id: 1, tags: ['a', 'b'] }, { id: 2 }] }, args: ['svc', '0', 'tags', 'a'], after: { svc: [{ id: 1, tags: ['b'] }, { id: 2 }] }, changed: true },
  { name: 'array index path then key', before: { svc: [{ id: 1 }, { id: 2, x: 1 }] }, args: ['svc', '1', 'x'], after: { svc: [{ id: 1 }, { id: 2 }] }, changed: true },
  { name: 'missing key on the path', before: { a: { b: 1 } }, args: ['zz', 'b'], after: { a: { b: 1 } }, changed: false },
  { name: 'missing key to remove', before: { a: { b: 1 } }, args: ['a', 'c'], after: { a: { b: 1 } }, changed: false },
  { name: 'index out of range', before: { xs: [[1]] }, args: ['xs', '1', '1'], after: { xs: [[1]] }, changed: false },
  { name: 'non-decimal index', before: { xs: [[1]] }, args: ['xs', '01', '1'], after: { xs: [[1]] }, changed: false },
  { name: 'walking into a scalar', before: { a: 5 }, args: ['a', 'b', 'c'], after: { a: 5 }, changed: false },
  { name: 'value parent is a scalar', before: { a: 5 }, args: ['a', '5'], after: { a: 5 }, changed: false },
  { name: 'value not present', before: { xs: [1] }, args: ['xs', '"1"'], after: { xs: [1] }, changed: false },
  { name: 'empty JSON array of values', before: { xs: [1] }, args: ['xs', '[]'], after: { xs: [1] }, changed: false },
  { name: 'inherited name is not a key', before: { a: 1 }, args: ['constructor'], after: { a: 1 }, changed: false },
];

for (const c of clearCases) {
  test(`clear: ${c.name}`, () => {
    const before = deepFreeze(structuredClone(c.before));
    const result = clearValue(before, c.args);
    assert.deepStrictEqual(result, { changed: c.changed, value: c.after });
    assert.deepStrictEqual(before, c.before);
    if (!c.changed) assert.equal(result.value, before);
  });
}

type Step =
  | { op: 'merge'; patch: Json; after: Json }
  | { op: 'clear'; args: string[]; after: Json | undefined };

// The cases table of MERGE-AND-CLEAR.md, chained where it says "the result above".
const docChains: { before: Json; steps: Step[] }[] = [
  {
    before: { db: { hosts: ['a', 'b'], port: 1 }, mode: 'x' },
    steps: [
      { op: 'merge', patch: { db: { hosts: ['b', 'c'], port: 2 }, mode: { on: true } }, after: { db: { hosts: ['a', 'b', 'c'], port: 2 }, mode: { on: true } } },
      { op: 'merge', patch: { db: { hosts: { replace: ['z'] } } }, after: { db: { hosts: ['z'], port: 2 }, mode: { on: true } } },
      { op: 'clear', args: ['db', 'port'], after: { db: { hosts: ['z'] }, mode: { on: true } } },
    ],
  },
  {
    before: { xs: ['p', 'q', 'r'], keep: 1 },
    steps: [
      { op: 'clear', args: ['xs', 'q'], after: { xs: ['p', 'r'], keep: 1 } },
      { op: 'clear', args: ['xs', '["p","r"]'], after: { keep: 1 } },
    ],
  },
  { before: [{ id: 1 }, { id: 2 }], steps: [{ op: 'merge', patch: [{ id: 1 }, { id: 3 }], after: [{ id: 1 }, { id: 2 }, { id: 3 }] }] },
  { before: [1, 2], steps: [{ op: 'merge', patch: ['2', 3], after: [1, 2, '2', 3] }] },
];

docChains.forEach((chain, n) => {
  test(`doc cases table, chain ${n + 1}`, () => {
    let value: Json = deepFreeze(structuredClone(chain.before));
    for (const step of chain.steps) {
      if (step.op === 'merge') {
        value = deepFreeze(mergeValue(value, deepFreeze(structuredClone(step.patch))));
        assert.deepStrictEqual(value, step.after);
      } else {
        const r = clearValue(value, step.args);
        assert.deepStrictEqual(r, { changed: true, value: step.after });
        assert.ok(r.value !== undefined);
        value = deepFreeze(r.value);
      }
    }
  });
});

const equalCases: [Json, Json, boolean][] = [
  [{ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }, true],
  [2, '2', false],
  [[1, 2], [2, 1], false],
  [{ a: undefined as unknown as Json }, { b: undefined as unknown as Json }, false],
  [{ a: 1 }, { a: 1, b: 1 }, false],
  [[], {}, false],
  [null, {}, false],
  [null, null, true],
  [0, false, false],
];

test('jsonEqual: deep, strict types, key order irrelevant', () => {
  for (const [a, b, expected] of equalCases) {
    assert.equal(jsonEqual(a, b), expected, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(jsonEqual(b, a), expected);
  }
});

test('results share no objects with the inputs', () => {
  const before = { a: { x: [1] }, keep: { y: 1 } };
  const patch = { a: { z: { w: 1 } }, n: [{ k: 1 }] };
  const out = mergeValue(before, patch) as { [k: string]: { [k: string]: Json } };
  assert.notEqual(out.keep, before.keep);
  assert.notEqual(out.a.x, before.a.x);
  assert.notEqual(out.a.z, patch.a.z);
  assert.notEqual(out.n, patch.n);
  const cleared = clearValue(before, ['a', 'x', '2']);
  assert.equal(cleared.changed, false);
  const cut = clearValue(before, ['a', 'x', '1']).value as { [k: string]: Json };
  assert.notEqual(cut.keep, before.keep);
});

test('depth limit: 256 levels pass, 257 throw RangeError', () => {
  const ok = nested(256);
  const deep = nested(257);
  assert.deepStrictEqual(mergeValue(undefined, ok), ok);
  assert.ok(jsonEqual(ok, nested(256)));
  assert.deepStrictEqual(clearValue(ok, ['zz']), { changed: false, value: ok });
  const tooDeep = { name: 'RangeError', message: /deeper than 256 levels/ };
  assert.throws(() => mergeValue(undefined, deep), tooDeep);
  assert.throws(() => mergeValue(deep, [2]), tooDeep);
  assert.throws(() => mergeValue({ a: 1 }, { a: deep }), tooDeep);
  assert.throws(() => jsonEqual(deep, nested(257)), tooDeep);
  assert.throws(() => clearValue(deep, ['0']), tooDeep);
  assert.throws(() => clearValue([1], [JSON.stringify(nested(300))]), tooDeep);
  // Far beyond the limit must still be a RangeError from the guard, not a stack overflow.
  assert.throws(() => mergeValue(undefined, nested(100_000)), tooDeep);
});

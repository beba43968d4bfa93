import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearValue, mergeValue, type Json } from '../../src/server/model/merge.js';
import {
  blockersOfDelete,
  changedKeys,
  checkParents,
  dependentsOf,
  explain,
  flatten,
  mergedKey,
  mergedView,
  type ExplainedLeaf,
  type Layer,
  type OwnEntry,
  type ParentMap,
} from '../../src/server/model/layers/index.js';

function parents(entries: Record<string, string[]>): ParentMap {
  return new Map(Object.entries(entries));
}

const diamond = parents({ base: [], prod: ['base'], eu: ['base'], 'prod/eu': ['prod', 'eu'] });

/** e0 ← e1 ← … ← e(n-1): each environment's one parent is the one before it. */
function chain(n: number): Map<string, string[]> {
  const map = new Map<string, string[]>([['e0', []]]);
  for (let i = 1; i < n; i++) map.set(`e${i}`, [`e${i - 1}`]);
  return map;
}

function refusal(env: string, proposed: string[], map: ParentMap, exists: (e: string) => boolean = (e) => map.has(e)): string {
  const result = checkParents(env, proposed, map, exists);
  assert.equal(result.ok, false, 'expected a refusal');
  return result.ok ? '' : result.refusal.message;
}

// ---- flatten ----

test('flatten: a chain merges from the top ancestor down to the environment', () => {
  assert.deepEqual(flatten('c', parents({ a: [], b: ['a'], c: ['b'] })), ['a', 'b', 'c']);
  assert.deepEqual(flatten('a', parents({ a: [] })), ['a']);
  assert.deepEqual(flatten('lonely', parents({})), ['lonely']);
});

test('flatten: a diamond lists the shared parent once, at its first position', () => {
  assert.deepEqual(flatten('prod/eu', diamond), ['base', 'prod', 'eu', 'prod/eu']);
});

test('flatten: a wider graph is flatten(A), then flatten(B) minus those present, …, then the environment', () => {
  const map = parents({ X: ['A', 'B', 'C'], A: ['R', 'S'], B: ['S', 'T'], C: ['R', 'U'], S: ['R'], R: [], T: [], U: [] });
  const order = flatten('X', map);
  assert.deepEqual(order, ['R', 'S', 'A', 'T', 'B', 'U', 'C', 'X']);
  // Every environment comes after all of its own parents.
  for (const [env, ps] of map) for (const p of ps) assert.ok(order.indexOf(p) < order.indexOf(env), `${p} before ${env}`);
});

test('flatten: the order of a parent list matters', () => {
  const map = parents({ a: [], b: [], x: ['b', 'a'] });
  assert.deepEqual(flatten('x', map), ['b', 'a', 'x']);
});

test('flatten and dependentsOf terminate on a cyclic map', () => {
  const map = parents({ a: ['b'], b: ['c'], c: ['a'], d: ['a'] });
  assert.deepEqual(flatten('a', map), ['c', 'b', 'a']);
  assert.deepEqual(flatten('d', map), ['c', 'b', 'a', 'd']);
  assert.deepEqual(dependentsOf('a', map), ['b', 'c', 'd']);
});

// ---- checkParents ----

test('checkParents accepts a diamond and a chain exactly 8 deep', () => {
  assert.deepEqual(checkParents('prod/eu', ['prod', 'eu'], diamond, (e) => diamond.has(e)), { ok: true });
  const map = chain(9); // e8 is 8 deep
  assert.deepEqual(checkParents('e8', ['e7'], map, (e) => map.has(e)), { ok: true });
  assert.deepEqual(checkParents('e0', [], map, (e) => map.has(e)), { ok: true });
});

test('checkParents refuses more than 16 parents', () => {
  const many = Array.from({ length: 17 }, (_, i) => `p${i}`);
  assert.equal(refusal('x', many, parents({}), () => true), 'too many parents for "x": 17, at most 16');
  const sixteen = many.slice(0, 16);
  assert.deepEqual(checkParents('x', sixteen, parents({}), () => true), { ok: true });
});

test('checkParents refuses the environment as its own parent', () => {
  assert.equal(refusal('prod', ['base', 'prod'], diamond), '"prod" cannot be a parent of itself');
});

test('checkParents refuses a parent listed twice', () => {
  assert.equal(refusal('prod/eu', ['prod', 'eu', 'prod'], diamond), 'parent "prod" is listed twice');
});

test('checkParents refuses a parent that does not exist', () => {
  assert.equal(refusal('prod/eu', ['prod', 'nope'], diamond), 'parent "nope" does not exist');
});

test('checkParents refuses a cycle and names it', () => {
  const map = parents({ base: [], 'prod/eu': ['base'] });
  const result = checkParents('base', ['prod/eu'], map, (e) => map.has(e));
  assert.deepEqual(result, {
    ok: false,
    refusal: { kind: 'cycle', cycle: ['base', 'prod/eu', 'base'], message: 'cycle: base \u2192 prod/eu \u2192 base' },
  });
  assert.equal(refusal('base', ['eu'], diamond), 'cycle: base \u2192 eu \u2192 base');
  assert.equal(refusal('base', ['prod/eu'], diamond), 'cycle: base \u2192 prod/eu \u2192 prod \u2192 base');
  assert.equal(refusal('c', ['a'], parents({ a: ['b'], b: ['c'], c: [] })), 'cycle: c \u2192 a \u2192 b \u2192 c');
});

test('checkParents names a cycle a damaged map already holds', () => {
  assert.equal(refusal('x', ['a'], parents({ a: ['b'], b: ['a'] })), 'cycle: a \u2192 b \u2192 a');
  assert.equal(refusal('x', [], parents({ x: [], a: ['x', 'b'], b: ['a'] })), 'cycle: a \u2192 b \u2192 a');
});

test('checkParents refuses a chain more than 8 deep, above the environment', () => {
  const map = chain(9);
  assert.equal(
    refusal('x', ['e8'], map),
    'chain more than 8 deep: x \u2192 e8 \u2192 e7 \u2192 e6 \u2192 e5 \u2192 e4 \u2192 e3 \u2192 e2 \u2192 e1 \u2192 e0',
  );
});

test('checkParents refuses a chain more than 8 deep through the environment\'s dependents', () => {
  const map = chain(9).set('top', []);
  assert.equal(
    refusal('e0', ['top'], map),
    'chain more than 8 deep: e8 \u2192 e7 \u2192 e6 \u2192 e5 \u2192 e4 \u2192 e3 \u2192 e2 \u2192 e1 \u2192 e0 \u2192 top',
  );
  // In the middle: 4 below, and a new 5-deep ancestry above.
  const mid = chain(5).set('t0', []);
  for (let i = 1; i < 5; i++) mid.set(`t${i}`, [`t${i - 1}`]);
  assert.match(refusal('e0', ['t4'], mid), /^chain more than 8 deep: e4 \u2192 .* \u2192 e0 \u2192 t4 \u2192 .* \u2192 t0$/);
  mid.delete('t4');
  assert.deepEqual(checkParents('e0', ['t3'], mid, (e) => mid.has(e)), { ok: true });
});

test('checkParents walks a diamond-rich map without retracing it', () => {
  // 8 levels, each of 16 environments all built on every environment of the level above: 16^8 paths.
  const map = new Map<string, string[]>();
  for (let level = 0; level < 8; level++) {
    for (let i = 0; i < 16; i++) map.set(`l${level}.${i}`, level === 0 ? [] : Array.from({ length: 16 }, (_, j) => `l${level - 1}.${j}`));
  }
  assert.deepEqual(checkParents('x', ['l7.0'], map, (e) => map.has(e)), { ok: true });
  assert.match(refusal('x', ['l7.0'], map.set('l0.0', ['y']).set('y', [])), /^chain more than 8 deep: x \u2192 l7\.0/);
});

test('a 10,000-environment chain: refused by the depth check, walked without recursion', () => {
  const map = chain(10_000);
  assert.match(refusal('x', ['e9999'], map), /^chain more than 8 deep: x \u2192 e9999 \u2192 e9998 \u2192 /);
  assert.match(refusal('e0', ['top'], map, () => true), /^chain more than 8 deep: /);
  assert.match(refusal('e0', ['e9999'], map), /^cycle: e0 \u2192 e9999 \u2192 e9998 \u2192 /);
  assert.equal(flatten('e9999', map).length, 10_000);
  assert.equal(dependentsOf('e0', map).length, 9_999);
  map.set('e0', ['e9999']); // a damaged store: one cycle of 10,000
  assert.equal(flatten('e5000', map).length, 10_000);
  assert.equal(dependentsOf('e0', map).length, 9_999);
});

// ---- dependents and deletion ----

test('dependentsOf: through a chain and a diamond, each once, sorted by name', () => {
  assert.deepEqual(dependentsOf('a', parents({ a: [], b: ['a'], c: ['b'], z: [] })), ['b', 'c']);
  assert.deepEqual(dependentsOf('base', diamond), ['eu', 'prod', 'prod/eu']);
  assert.deepEqual(dependentsOf('prod', diamond), ['prod/eu']);
  assert.deepEqual(dependentsOf('prod/eu', diamond), []);
});

test('blockersOfDelete: the environments whose list names it', () => {
  assert.deepEqual(blockersOfDelete('base', diamond), ['eu', 'prod']);
  assert.deepEqual(blockersOfDelete('eu', diamond), ['prod/eu']);
  assert.deepEqual(blockersOfDelete('prod/eu', diamond), []);
});

// ---- merged views ----

function layer(env: string, entries: Record<string, OwnEntry>): Layer {
  return { env, entries: new Map(Object.entries(entries)) };
}

const set = (text: string): OwnEntry => ({ text });
const unset = (...marks: string[][]): OwnEntry => ({ unset: marks });

type Step = { merge: string } | { clear: string[] };

/** The same steps as merge.ts applies them one after another to one value, and as layers. */
function bothWays(first: string, steps: Step[]): { sequential: string | undefined; layered: string | undefined } {
  let value: Json | undefined = JSON.parse(first) as Json;
  for (const step of steps) {
    if ('merge' in step) value = mergeValue(value, JSON.parse(step.merge) as Json);
    else if (value !== undefined) value = clearValue(value, step.clear).value;
  }
  const layers = [layer('l0', { k: set(first) })];
  steps.forEach((step, i) => layers.push(layer(`l${i + 1}`, { k: 'merge' in step ? set(step.merge) : unset(step.clear) })));
  return { sequential: value === undefined ? undefined : JSON.stringify(value), layered: mergedKey('k', layers) };
}

const docExamples: { name: string; first: string; steps: Step[]; after: string }[] = [
  {
    name: 'merge of objects, arrays as unions, scalars and objects replacing',
    first: '{"db":{"hosts":["a","b"],"port":1},"mode":"x"}',
    steps: [{ merge: '{"db":{"hosts":["b","c"],"port":2},"mode":{"on":true}}' }],
    after: '{"db":{"hosts":["a","b","c"],"port":2},"mode":{"on":true}}',
  },
  {
    name: 'then replace',
    first: '{"db":{"hosts":["a","b","c"],"port":2},"mode":{"on":true}}',
    steps: [{ merge: '{"db":{"hosts":{"replace":["z"]}}}' }],
    after: '{"db":{"hosts":["z"],"port":2},"mode":{"on":true}}',
  },
  {
    name: 'then clear db port',
    first: '{"db":{"hosts":["z"],"port":2},"mode":{"on":true}}',
    steps: [{ clear: ['db', 'port'] }],
    after: '{"db":{"hosts":["z"]},"mode":{"on":true}}',
  },
  {
    name: 'all three rows, one layer each',
    first: '{"db":{"hosts":["a","b"],"port":1},"mode":"x"}',
    steps: [
      { merge: '{"db":{"hosts":["b","c"],"port":2},"mode":{"on":true}}' },
      { merge: '{"db":{"hosts":{"replace":["z"]}}}' },
      { clear: ['db', 'port'] },
    ],
    after: '{"db":{"hosts":["z"]},"mode":{"on":true}}',
  },
  { name: 'clear xs q', first: '{"xs":["p","q","r"],"keep":1}', steps: [{ clear: ['xs', 'q'] }], after: '{"xs":["p","r"],"keep":1}' },
  {
    name: 'clear xs q, then xs ["p","r"]: the emptied array goes',
    first: '{"xs":["p","q","r"],"keep":1}',
    steps: [{ clear: ['xs', 'q'] }, { clear: ['xs', '["p","r"]'] }],
    after: '{"keep":1}',
  },
  { name: 'union of objects', first: '[{"id":1},{"id":2}]', steps: [{ merge: '[{"id":1},{"id":3}]' }], after: '[{"id":1},{"id":2},{"id":3}]' },
  { name: 'union is strict', first: '[1,2]', steps: [{ merge: '["2",3]' }], after: '[1,2,"2",3]' },
];

for (const example of docExamples) {
  test(`docs/merge-and-clear.md, each operand in its own layer: ${example.name}`, () => {
    const { sequential, layered } = bothWays(example.first, example.steps);
    assert.equal(sequential, example.after);
    assert.equal(layered, example.after);
  });
}

test('an unset may hide what no parent gives yet, and hides it once a parent does', () => {
  const prod = layer('prod', { db: unset(['db', 'port']), mode: unset([]) });
  assert.equal(mergedKey('db', [layer('base', {}), prod]), undefined);
  assert.equal(mergedKey('mode', [layer('base', {}), prod]), undefined);
  const later = layer('base', { db: set('{"db":{"host":"h","port":1}}'), mode: set('"x"') });
  assert.equal(mergedKey('db', [later, prod]), '{"db":{"host":"h"}}');
  assert.equal(mergedKey('mode', [later, prod]), undefined);
  // del: prod's own entry gone, the inherited value shows again.
  assert.equal(mergedKey('mode', [later, layer('prod', {})]), '"x"');
});

test('unset of a path, then a higher layer sets it again', () => {
  const layers = [
    layer('base', { db: set('{"host":"h","port":1}') }),
    layer('prod', { db: unset(['port']) }),
    layer('prod/eu', { db: set('{"port":2}') }),
  ];
  assert.equal(mergedKey('db', layers.slice(0, 2)), '{"host":"h"}');
  assert.equal(mergedKey('db', layers), '{"host":"h","port":2}');
});

test('an unset hides the layers below it, never its own value', () => {
  const layers = [
    layer('base', { db: set('{"host":"h","port":1,"hosts":["a","b"]}') }),
    layer('prod', { db: { unset: [['port'], ['hosts', 'a']], text: '{"port":3,"hosts":["c"]}' } }),
  ];
  assert.equal(mergedKey('db', layers), '{"host":"h","hosts":["b","c"],"port":3}');
  const whole = [layers[0], layer('prod', { db: { unset: [[]], text: '{"port":3}' } })];
  assert.equal(mergedKey('db', whole), '{"port":3}');
});

test('replace in a higher layer replaces the array below; without it arrays are unions', () => {
  const base = layer('base', { hosts: set('{"list":["a","b"]}') });
  assert.equal(mergedKey('hosts', [base, layer('prod', { hosts: set('{"list":{"replace":["z"]}}') })]), '{"list":["z"]}');
  assert.equal(mergedKey('hosts', [base, layer('prod', { hosts: set('{"list":["b","z"]}') })]), '{"list":["a","b","z"]}');
});

test('null in a higher layer stores null', () => {
  assert.equal(mergedKey('k', [layer('base', { k: set('{"a":{"x":1},"b":2}') }), layer('prod', { k: set('{"a":null}') })]), '{"a":null,"b":2}');
  assert.equal(mergedKey('k', [layer('base', { k: set('{"x":1}') }), layer('prod', { k: set('null') })]), 'null');
  assert.equal(mergedKey('k', [layer('base', { k: set('null') })]), 'null');
});

test('a key one layer alone gives passes through byte for byte', () => {
  const text = '{ "b": 1,  "a": [ 2, {"replace": [3]} ] }';
  const layers = [
    layer('base', { other: set('1') }),
    layer('prod', { k: set(text) }),
    layer('prod/eu', { k: unset(['missing']), other: set('2') }),
  ];
  assert.equal(mergedKey('k', layers), text);
  assert.deepEqual([...mergedView(layers)], [['k', text], ['other', '2']]);
});

test('mergedView and changedKeys', () => {
  const base = layer('base', { a: set('1'), b: set('[1]'), c: set('"c"') });
  const prod = layer('prod', { b: set('[2]'), c: unset([]), d: set('{}') });
  const before = mergedView([base, prod]);
  assert.deepEqual([...before], [['a', '1'], ['b', '[1,2]'], ['d', '{}']]);
  const changedBase = layer('base', { a: set('1'), b: set('[3]'), c: set('"C"'), e: set('true') });
  const after = mergedView([changedBase, prod]);
  assert.deepEqual(changedKeys(before, after), ['b', 'e']);
  assert.deepEqual(changedKeys(after, new Map([['a', '1']])), ['b', 'd', 'e']);
  assert.deepEqual(changedKeys(before, before), []);
});

test('deep values are bounded by merge.ts\'s guard', () => {
  const deep = `${'['.repeat(300)}1${']'.repeat(300)}`;
  const layers = [layer('base', { k: set(deep) }), layer('prod', { k: set(deep) })];
  assert.throws(() => mergedKey('k', layers), RangeError);
  assert.throws(() => explain('k', layers), RangeError);
  assert.throws(() => explain('k', layers.slice(0, 1)), RangeError);
  assert.equal(mergedKey('k', layers.slice(0, 1)), deep); // passes through unparsed
});

// ---- explain ----

/** Rebuilds a value from its leaves, to check they are exactly the merged value. */
function rebuild(leaves: ExplainedLeaf[]): Json | undefined {
  const root: { v?: Json } = {};
  for (const { path, value } of leaves) {
    let holder: Record<string | number, Json> = root;
    let at: string | number = 'v';
    for (const step of path) {
      holder[at] ??= typeof step === 'number' ? [] : {};
      holder = holder[at] as Record<string | number, Json>;
      at = step;
    }
    holder[at] = structuredClone(value);
  }
  return root.v;
}

test('explain names the layer of every leaf of a three-layer value with arrays', () => {
  const layers = [
    layer('base', { k: set('{"db":{"hosts":["a","b"],"port":1},"tags":["x"],"gone":{"a":1}}') }),
    layer('prod', { k: { unset: [['db', 'hosts', 'a'], ['gone']], text: '{"db":{"hosts":["b","c"]},"tags":{"replace":["y"]}}' } }),
    layer('prod/eu', { k: set('{"db":{"port":2,"tls":{}},"extra":[{"id":1,"on":[true]}],"tags":["y","w"]}') }),
  ];
  const { leaves, hidings } = explain('k', layers);
  assert.deepEqual(leaves, [
    { path: ['db', 'hosts', 0], value: 'b', layer: 'base', hiddenBy: ['prod'] },
    { path: ['db', 'hosts', 1], value: 'c', layer: 'prod', hiddenBy: ['prod'] },
    { path: ['db', 'port'], value: 2, layer: 'prod/eu', hiddenBy: [] },
    { path: ['db', 'tls'], value: {}, layer: 'prod/eu', hiddenBy: [] },
    { path: ['tags', 0], value: 'y', layer: 'prod', hiddenBy: [] },
    { path: ['tags', 1], value: 'w', layer: 'prod/eu', hiddenBy: [] },
    { path: ['extra', 0, 'id'], value: 1, layer: 'prod/eu', hiddenBy: [] },
    { path: ['extra', 0, 'on', 0], value: true, layer: 'prod/eu', hiddenBy: [] },
  ]);
  assert.deepEqual(hidings, [
    { layer: 'prod', path: ['db', 'hosts'] },
    { layer: 'prod', path: ['gone'] },
  ]);
  assert.deepEqual(rebuild(leaves), JSON.parse(mergedKey('k', layers) as string));
});

test('explain: a leaf set again above an unset says who hid what was there', () => {
  const layers = [
    layer('base', { db: set('{"host":"h","port":1}') }),
    layer('prod', { db: unset(['port']) }),
    layer('prod/eu', { db: set('{"port":2}') }),
  ];
  assert.deepEqual(explain('db', layers).leaves, [
    { path: ['host'], value: 'h', layer: 'base', hiddenBy: [] },
    { path: ['port'], value: 2, layer: 'prod/eu', hiddenBy: ['prod'] },
  ]);
});

test('explain: whole-key unsets, emptied arrays, indexed paths, a scalar value, nothing at all', () => {
  const whole = explain('k', [layer('base', { k: set('{"a":1}') }), layer('prod', { k: { unset: [[]], text: '[1]' } })]);
  assert.deepEqual(whole, { leaves: [{ path: [0], value: 1, layer: 'prod', hiddenBy: ['prod'] }], hidings: [{ layer: 'prod', path: [] }] });

  const emptied = [
    layer('base', { k: set('{"xs":[["p"],["q"]],"ys":["r"],"keep":1}') }),
    layer('prod', { k: unset(['xs', '0', 'p'], ['ys', 'r']) }),
    layer('prod/eu', { k: set('{"xs":[["s"]]}') }),
  ];
  const e = explain('k', emptied);
  assert.deepEqual(rebuild(e.leaves), JSON.parse(mergedKey('k', emptied) as string));
  assert.deepEqual(e.leaves, [
    { path: ['xs', 0, 0], value: 'q', layer: 'base', hiddenBy: ['prod'] },
    { path: ['xs', 1, 0], value: 's', layer: 'prod/eu', hiddenBy: [] },
    { path: ['keep'], value: 1, layer: 'base', hiddenBy: [] },
  ]);
  assert.deepEqual(e.hidings, [
    { layer: 'prod', path: ['xs', 0] },
    { layer: 'prod', path: ['ys'] },
  ]);

  const indexed = [
    layer('base', { k: set('[{"id":1,"x":true},{"id":2}]') }),
    layer('prod', { k: set('[{"id":3}]') }),
    layer('prod/eu', { k: unset(['0', 'x']) }),
  ];
  assert.deepEqual(explain('k', indexed).leaves, [
    { path: [0, 'id'], value: 1, layer: 'base', hiddenBy: [] },
    { path: [1, 'id'], value: 2, layer: 'base', hiddenBy: [] },
    { path: [2, 'id'], value: 3, layer: 'prod', hiddenBy: [] },
  ]);

  assert.deepEqual(explain('k', [layer('base', { k: set('"s"') }), layer('prod', { k: set('7') })]).leaves, [
    { path: [], value: 7, layer: 'prod', hiddenBy: [] },
  ]);
  assert.deepEqual(explain('k', [layer('base', { k: set('1') }), layer('prod', { k: unset([]) })]), {
    leaves: [],
    hidings: [{ layer: 'prod', path: [] }],
  });
  assert.deepEqual(explain('k', [layer('base', {})]), { leaves: [], hidings: [] });
});

test('explain agrees with mergedKey on the docs examples in layers', () => {
  for (const example of docExamples) {
    const layers = [layer('l0', { k: set(example.first) })];
    example.steps.forEach((step, i) => layers.push(layer(`l${i + 1}`, { k: 'merge' in step ? set(step.merge) : unset(step.clear) })));
    assert.deepEqual(rebuild(explain('k', layers).leaves), JSON.parse(example.after), example.name);
  }
});

test('explain rebuilds mergedKey\'s value on 2,000 random stacks of values and unsets', () => {
  let seed = 20;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const words = ['a', 'b', 'c', '0', '1'];
  const value = (depth: number): Json => {
    const pick = rand(depth > 2 ? 3 : 6);
    if (pick === 0) return rand(3);
    if (pick === 1) return words[rand(3)];
    if (pick === 2) return null;
    if (pick === 3) return Array.from({ length: rand(3) }, () => value(depth + 1));
    if (pick === 4) return { replace: Array.from({ length: rand(3) }, () => value(depth + 1)) };
    const obj: Record<string, Json> = {};
    for (let i = rand(3); i >= 0; i--) obj[words[rand(3)]] = value(depth + 1);
    return obj;
  };
  for (let round = 0; round < 2000; round++) {
    const layers: Layer[] = [];
    for (let i = 0; i < 3; i++) {
      const marks = Array.from({ length: rand(3) }, () => Array.from({ length: rand(3) }, () => words[rand(words.length)]));
      const entry: OwnEntry = rand(4) === 0 ? { unset: marks } : { text: JSON.stringify(value(0)), unset: marks };
      layers.push(layer(`l${i}`, { k: entry }));
    }
    const text = mergedKey('k', layers);
    const { leaves } = explain('k', layers);
    assert.deepEqual(rebuild(leaves), text === undefined ? undefined : JSON.parse(text), JSON.stringify(layers.map((l) => l.entries.get('k'))));
  }
});

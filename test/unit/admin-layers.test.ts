/**
 * The admin's side of layered environments without a server: the words of
 * env layers, unset, get --own/--explain, apply --dry-run as requests, the
 * flags refused where they do not belong, an apply folder as entries, and
 * how explanations and plans print.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readApplyDir } from '../../src/admin/apply-files.js';
import { prepareCommand, type CommandIO } from '../../src/admin/commands.js';
import { formatResult } from '../../src/admin/format.js';
import { formatExplain, formatPlan, leafPath } from '../../src/admin/format-layers.js';

const io: CommandIO = { account: 'admin', passwordIterations: 1, newPassword: () => Promise.resolve('unused-password') };
const plain = { dim: (t: string) => t, bold: (t: string) => t, key: (t: string) => t };

async function request(...words: string[]): Promise<unknown> {
  return (await prepareCommand(words, io)).request;
}

async function refused(words: string[], message: RegExp): Promise<void> {
  await assert.rejects(prepareCommand(words, io), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_USAGE', err.message);
    assert.match(err.message, message);
    return true;
  });
}

describe('layered commands as requests', () => {
  test('env layers: parents, --none, --show; unset reads PATH as clear does', async () => {
    assert.deepEqual(await request('env', 'layers', 'prod', 'base', 'eu'), { op: 'env.layers', env: 'prod', parents: ['base', 'eu'] });
    assert.deepEqual(await request('env', 'layers', 'prod', '--none'), { op: 'env.layers', env: 'prod', parents: [] });
    assert.deepEqual(await request('env', 'layers', '--show', 'prod'), { op: 'env.show', env: 'prod' });
    assert.deepEqual(await request('unset', 'prod', 'db', 'pool', '0'), { op: 'unset', env: 'prod', key: 'db', path: ['pool', '0'] });
    assert.deepEqual(await request('unset', 'prod', 'db'), { op: 'unset', env: 'prod', key: 'db', path: [] });
    // After `use prod` in the REPL, unset takes no ENV; env layers still names its own.
    assert.deepEqual((await prepareCommand(['unset', 'db'], io, 'prod')).request, { op: 'unset', env: 'prod', key: 'db', path: [] });
    assert.deepEqual((await prepareCommand(['env', 'layers', 'eu', 'base'], io, 'prod')).request, { op: 'env.layers', env: 'eu', parents: ['base'] });
  });

  test('get --own / --explain, list and history --own', async () => {
    assert.deepEqual(await request('get', 'prod', 'db', '--own'), { op: 'get', env: 'prod', key: 'db', own: true });
    assert.deepEqual(await request('get', 'prod', 'db', '--explain'), { op: 'get', env: 'prod', key: 'db', explain: true });
    assert.deepEqual(await request('list', 'prod', '--own'), { op: 'list', env: 'prod', own: true });
    assert.deepEqual(await request('history', 'prod', 'db', '--own'), { op: 'history', env: 'prod', key: 'db', own: true });
  });

  test('usage errors: a missing PARENT, flags that do not go together or with the command', async () => {
    await refused(['env', 'layers', 'prod'], /^usage: env layers ENV PARENT… \| ENV --none \| ENV --show$/);
    await refused(['env', 'layers', 'prod', 'base', '--none'], /--none takes no PARENT/);
    await refused(['env', 'layers', 'prod', '--none', '--show'], /--show and --none do not go together/);
    await refused(['get', 'prod', 'db', '--own', '--explain'], /--own and --explain do not go together/);
    await refused(['get', 'prod', 'db', '--explain', '--raw'], /--raw and --explain/);
    await refused(['set', 'prod', 'db', '1', '--own'], /^--own goes with get, list, history only$/);
    await refused(['history', 'prod', '--explain'], /^--explain goes with get only$/);
    await refused(['env', 'list', '--show'], /^--show goes with env layers only$/);
    await refused(['del', 'prod', 'db', '--dry-run'], /^--dry-run goes with apply only$/);
    await refused(['unset', 'prod'], /^usage: unset ENV KEY \[PATH…\]$/);
  });
});

describe('an apply folder', () => {
  const folder = (files: Record<string, string>, dirs: string[] = []): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-apply-dir-'));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    for (const name of dirs) fs.mkdirSync(path.join(dir, name));
    return dir;
  };

  test('one entry per KEY.json, sorted by key, each value as JSON text; --dry-run asks for a plan', async () => {
    const dir = folder({ 'b.json': ' { "x" : [1, 2] }\n', 'a.json': '"text"', '.hidden.json': 'null' });
    try {
      assert.deepEqual(readApplyDir(dir), [['.hidden', 'null'], ['a', '"text"'], ['b', '{"x":[1,2]}']]);
      assert.deepEqual(await request('apply', 'prod', dir, '--dry-run', '--replace'), {
        op: 'plan', env: 'prod', entries: [['.hidden', 'null'], ['a', '"text"'], ['b', '{"x":[1,2]}']], replace: true,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('refused, naming them: other files (the first ten, then a count), subfolders and links to them, a bare .json, an empty folder', () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`n${String(i).padStart(2, '0')}.txt`, ''])), [], /holds files not ending in \.json: "n00\.txt", .*"n09\.txt" and 2 more \(one KEY\.json file per key, nothing else\)$/],
      [{ 'a.json': '1' }, ['sub'], /holds subfolders, which apply does not read: "sub"/],
      [{ '.json': '1' }, [], /holds a file named \.json, which names no key/],
      [{}, [], /holds no KEY\.json file: nothing to apply$/],
    ];
    for (const [files, dirs, message] of cases) {
      const dir = folder(files, dirs);
      try {
        assert.throws(() => readApplyDir(dir), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'E_BAD_FILE');
          assert.match(err.message, message);
          return true;
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const dir = folder({ 'a.json': '1' }, ['real']);
    try {
      fs.rmdirSync(path.join(dir, 'real'));
      fs.symlinkSync(os.tmpdir(), path.join(dir, 'link.json'));
      assert.throws(() => readApplyDir(dir), /holds subfolders, which apply does not read: "link\.json"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('how layered answers print', () => {
  test('leaf paths are JSONPath-like', () => {
    assert.equal(leafPath([]), '(value)');
    assert.equal(leafPath(['a', 'b', 2]), 'a.b[2]');
    assert.equal(leafPath([0, 'x']), '[0].x');
    assert.equal(leafPath(['odd key', 'ok']), '["odd key"].ok');
    // A control character in a key shows escaped, never acted on.
    assert.equal(leafPath(['esc\u001b']), '["esc\\u001b"]');
  });

  test('explain: one aligned line per leaf; (no access) alone; hidden by; --json the leaves as data', () => {
    const leaves = [
      { path: ['host'], layer: 'prod', rev: 8, author: 'alice' },
      { path: ['pool', 10], layer: 'base', rev: 12, author: 'bob', hidden: ['prod/eu'] },
      { path: ['secret'], layer: '(no access)', hidden: ['x'] },
    ];
    assert.equal(formatExplain(leaves, plain), [
      'host      prod         @8   alice',
      'pool[10]  base         @12  bob    hidden by prod/eu',
      'secret    (no access)',
    ].join('\n'));
    assert.equal(formatExplain([{ path: [], layer: '', hidden: ['prod', 'eu'] }], plain), '(value)  hidden by prod, eu');
    const result = { env: 'prod', rev: 12, key: 'db', value: '{}', explain: leaves };
    assert.equal(formatResult({ op: 'get', env: 'prod', key: 'db', explain: true }, result, 'json'), JSON.stringify(leaves));
  });

  test('a plan: own changes (long lists counted), then each view with its count, the environment first', () => {
    const many = Array.from({ length: 12 }, (_, i) => `k${i}`);
    assert.equal(formatPlan({ env: 'base', rev: 7, added: many, changed: ['db'], removed: [], views: [{ env: 'base', changed: 13 }, { env: 'prod/eu', changed: 1 }] }, plain), [
      'base at revision 7: what apply would change (dry run: nothing was written)',
      `  added: 12 keys: ${many.slice(0, 10).join(', ')}, … and 2 more`,
      '  changed: db',
      'merged views that would change:',
      '  base: 13 keys',
      '  prod/eu: 1 key',
    ].join('\n'));
    assert.match(formatPlan({ env: 'a', rev: 1, added: [], changed: [], removed: [], views: [{ env: 'a', changed: 0 }] }, plain), /\n {2}own entries: no change\n/);
  });

  test('rollback: what still differs, after the usual line; history: via and parents', () => {
    const rollback = formatResult({ op: 'rollback', env: 'pe', rev: 9 }, { env: 'pe', rev: 14, changed: 1, differs: [{ key: 'db', layer: 'base' }] }, 'text');
    assert.equal(rollback, 'pe: revision 14 (1 key changed)\nstill differs from 9: db (from base)');
    const history = formatResult({ op: 'history', env: 'pe' }, {
      env: 'pe',
      releases: [
        { rev: 12, prev: 11, time: Date.parse('2026-12-01T08:00:00Z'), author: 'alice', op: 'set', via: 'base', changes: [['db', null, '1']] },
        { rev: 7, prev: 4, time: Date.parse('2026-12-01T07:00:00Z'), author: 'bob', op: 'env.layers', parents: ['prod', 'eu'], changes: [] },
      ],
    }, 'text');
    assert.equal(history, [
      'rev 12  2026-12-01T08:00:00Z  via base@12  set  by alice',
      '  + db = 1',
      'rev 7  2026-12-01T07:00:00Z  env.layers  by bob',
      '  parents: prod, eu',
    ].join('\n'));
  });
});

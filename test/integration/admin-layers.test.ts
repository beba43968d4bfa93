/**
 * Layered environments as an operator drives them with `vitefa admin`, one
 * command a run, against a real server of the embedded store: env layers
 * (--show, --none) and its refusals, unset beside del, get --own and
 * --explain, apply from a folder and --dry-run, history through layers,
 * env list and status naming parents, rollback saying what still differs,
 * and the REPL doing the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Procs, run, startServer, tempDir } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-admin-layers-');
let address: string;

const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);

/** Runs a command that must succeed; its standard output. */
async function ok(...args: string[]): Promise<string> {
  const r = await admin(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Lines of aligned columns, as their cells. */
function cells(text: string): string[][] {
  return text.trimEnd().split('\n').map((line) => line.split(/ {2,}/));
}

/** The revision a write's line names. */
async function wrote(...args: string[]): Promise<number> {
  const out = await ok(...args);
  const rev = /revision (\d+)/.exec(out)?.[1];
  assert.ok(rev !== undefined, out);
  return Number(rev);
}

before(async () => {
  const started = await startServer(path.join(dir, 'server'));
  procs.track(started.proc);
  address = started.address;
  // base ← prod ← pe → eu: pe is built on prod (itself on base) and eu.
  for (const env of ['base', 'prod', 'eu', 'pe', 'solo']) await ok('env', 'add', env);
});
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('env layers', () => {
  test('sets parents, --show prints them with the merge order and the dependents, --none removes them; env list and status name them', async () => {
    assert.match(await ok('env', 'layers', 'prod', 'base'), /^prod: parents base \(revision \d+\)\n$/);
    assert.match(await ok('env', 'layers', 'pe', 'prod', 'eu'), /^pe: parents prod, eu \(revision \d+\)\n$/);
    const show = await ok('env', 'layers', 'pe', '--show');
    assert.match(show, /^pe at revision \d+\nparents: prod, eu\norder: base → prod → eu → pe\ndependents: \(none\)\n$/);
    assert.match(await ok('env', 'layers', 'base', '--show'), /\nparents: \(none\)\norder: base\ndependents: pe, prod\n$/);
    const data = JSON.parse(await ok('--json', 'env', 'layers', 'prod', '--show')) as Record<string, unknown>;
    assert.deepEqual({ ...data, rev: 0 }, { env: 'prod', rev: 0, parents: ['base'], order: ['base', 'prod'], dependents: ['pe'] });

    const list = await ok('env', 'list');
    assert.match(list, /^ENV +REVISION +KEYS +PARENTS\n/);
    assert.match(list, /\npe +\d+ +\d+ +prod, eu\n/);
    assert.match(list, /\nbase +\d+ +\d+ +-\n/);
    const envs = (JSON.parse(await ok('--json', 'env', 'list')) as { envs: { env: string; parents?: string[] }[] }).envs;
    assert.deepEqual(envs.find((e) => e.env === 'pe')?.parents, ['prod', 'eu']);
    assert.match(await ok('status'), /\npe \(on prod, eu\) +\d+/);

    await ok('env', 'layers', 'solo', 'eu');
    assert.match(await ok('env', 'layers', 'solo', '--none'), /^solo: no parents now \(revision \d+\)\n$/);
    assert.match(await ok('env', 'layers', 'solo', '--show'), /\nparents: \(none\)\norder: solo\n/);
  });

  test('refusals: usage (exit 2), a cycle named, more than 16 parents, a missing parent, deleting a parent others are built on', async () => {
    for (const args of [['env', 'layers', 'solo'], ['env', 'layers', 'solo', 'eu', '--none'], ['env', 'layers', 'solo', '--show', '--none'], ['list', 'solo', '--explain']]) {
      const r = await admin(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^vitefa: .+\n$/);
    }
    const cycle = await admin('env', 'layers', 'base', 'pe');
    assert.equal(cycle.code, 1);
    assert.equal(cycle.stderr, 'vitefa: cycle: base → pe → prod → base\n');
    const many = await admin('env', 'layers', 'solo', ...Array.from({ length: 17 }, (_, i) => `p${i}`));
    assert.equal(many.code, 1);
    assert.match(many.stderr, /too many parents for "solo": 17, at most 16/);
    const missing = await admin('env', 'layers', 'solo', 'eu', 'nowhere');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /parent "nowhere" does not exist/);
    const del = await admin('env', 'del', 'prod');
    assert.equal(del.code, 1);
    assert.match(del.stderr, /cannot delete prod: pe is built on it/);
    assert.match(await ok('env', 'layers', 'solo', '--show'), /\nparents: \(none\)\n/, 'nothing refused was written');
  });
});

describe('values through layers', () => {
  const revs: Record<string, number> = {};
  before(async () => {
    revs.base = await wrote('set', 'base', 'db', '{"host":"b","pool":[1,2],"opts":{"x":1}}');
    revs.prod = await wrote('set', 'prod', 'db', '{"host":"p","pool":[3]}');
    revs.eu = await wrote('set', 'eu', 'db', '{"region":"eu"}');
  });

  test('get: the merged value; --own the own entry; --explain one line per leaf, --json as data; a layer not read shows as (no access)', async () => {
    assert.equal(await ok('get', 'pe', 'db'), '{"host":"p","pool":[1,2,3],"opts":{"x":1},"region":"eu"}\n');
    assert.equal(await ok('get', 'prod', 'db', '--own'), '{"host":"p","pool":[3]}\n');
    const none = await admin('get', 'pe', 'db', '--own');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /pe has no entry of its own for db/);
    // Aligned columns, two spaces apart at least: path, layer, @REV, author.
    const explained = await ok('get', 'pe', 'db', '--explain');
    assert.deepEqual(cells(explained), [
      ['host', 'prod', `@${revs.prod}`, 'admin'],
      ['pool[0]', 'base', `@${revs.base}`, 'admin'],
      ['pool[1]', 'base', `@${revs.base}`, 'admin'],
      ['pool[2]', 'prod', `@${revs.prod}`, 'admin'],
      ['opts.x', 'base', `@${revs.base}`, 'admin'],
      ['region', 'eu', `@${revs.eu}`, 'admin'],
    ]);
    assert.match(explained, /^host {5}prod {2}@/);
    const leaves = JSON.parse(await ok('get', 'pe', 'db', '--explain', '--json')) as unknown;
    assert.deepEqual(leaves, [
      { path: ['host'], layer: 'prod', rev: revs.prod, author: 'admin' },
      { path: ['pool', 0], layer: 'base', rev: revs.base, author: 'admin' },
      { path: ['pool', 1], layer: 'base', rev: revs.base, author: 'admin' },
      { path: ['pool', 2], layer: 'prod', rev: revs.prod, author: 'admin' },
      { path: ['opts', 'x'], layer: 'base', rev: revs.base, author: 'admin' },
      { path: ['region'], layer: 'eu', rev: revs.eu, author: 'admin' },
    ]);
    const raw = await admin('get', 'pe', 'db', '--explain', '--raw');
    assert.equal(raw.code, 2);
    const both = await admin('get', 'pe', 'db', '--explain', '--own');
    assert.equal(both.code, 2);

    const added = await run(['admin', '--server', address, 'user', 'add', 'vic', 'viewer', 'pe'], { env: { VITEFA_NEW_PASSWORD: 'vic-password-1' } });
    assert.equal(added.code, 0, added.stderr);
    const asVic = await run(['admin', '--server', address, 'get', 'pe', 'db', '--explain'], { env: { VITEFA_USER: 'vic', VITEFA_PASSWORD: 'vic-password-1' } });
    assert.equal(asVic.code, 0, asVic.stderr);
    assert.deepEqual(cells(asVic.stdout), ['host', 'pool[0]', 'pool[1]', 'pool[2]', 'opts.x', 'region'].map((leaf) => [leaf, '(no access)']));
  });

  test('unset hides what the layers give, del removes the own entry and shows them again', async () => {
    await ok('set', 'base', 'k', '{"a":1,"b":2}');
    await ok('set', 'prod', 'k', '{"c":3}');
    assert.equal(await ok('get', 'prod', 'k'), '{"a":1,"b":2,"c":3}\n');
    assert.match(await ok('unset', 'prod', 'k', 'b'), /^prod: revision \d+ \(1 key changed\)\n$/);
    assert.equal(await ok('get', 'prod', 'k'), '{"a":1,"c":3}\n');
    assert.equal(await ok('get', 'prod', 'k', '--own'), '{"unset":[["b"]],"value":{"c":3}}\n');
    assert.equal(await ok('get', 'pe', 'k'), '{"a":1,"c":3}\n', 'what is built on prod sees it hidden too');
    await ok('del', 'prod', 'k');
    assert.equal(await ok('get', 'prod', 'k'), '{"a":1,"b":2}\n');
    await ok('unset', 'prod', 'k');
    const gone = await admin('get', 'prod', 'k');
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /key k does not exist in prod/);
    assert.equal(await ok('get', 'prod', 'k', '--explain'), '(value)  (unset)      hidden by prod\n', 'nothing is left: the unset that hid it all');
    await ok('del', 'prod', 'k');
    assert.equal(await ok('get', 'prod', 'k'), '{"a":1,"b":2}\n');
    const notOwn = await admin('del', 'pe', 'k');
    assert.equal(notOwn.code, 1);
    assert.match(notOwn.stderr, /pe has no entry of its own for k: its value comes from its layers/);
    const usage = await admin('unset', 'prod');
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, 'vitefa: usage: unset ENV KEY [PATH…]\n');
  });

  test('list --own: only the own entries', async () => {
    await ok('set', 'pe', 'mine', '1');
    assert.equal(await ok('list', 'pe', '--own'), 'mine = 1\n');
    assert.match(await ok('list', 'pe'), /^db = .*\nk = .*\nmine = 1\n$/);
  });

  test('history: a release through a layer shows as via LAYER@REV, one that set the parents shows them; --own only its own', async () => {
    const rev = await wrote('set', 'base', 'through', '"b"');
    const history = await ok('history', 'pe', '--limit', '100');
    assert.match(history, new RegExp(`^rev ${rev}  \\S+  via base@${rev}  set  by admin\\n  \\+ through = "b"\\n`));
    assert.match(history, /\nrev \d+ {2}\S+ {2}env\.layers {2}by admin\n {2}parents: prod, eu\n/);
    const own = await ok('history', 'pe', '--own', '--limit', '100');
    assert.doesNotMatch(own, /via /);
    assert.match(own, /^rev \d+ {2}\S+ {2}set {2}by admin\n {2}\+ mine = 1\n/);
    assert.match(own, /\n {2}parents: prod, eu\n/);
  });

  test('rollback names the keys that still differ and the layer that makes them', async () => {
    const at = await wrote('set', 'pe', 'r', '1');
    await ok('set', 'base', 'db', '{"host":"b2"}');
    await ok('set', 'pe', 'r', '2');
    const out = await ok('rollback', 'pe', String(at));
    assert.match(out, new RegExp(`^pe: revision \\d+ \\(1 key changed\\)\\nstill differs from ${at}: db \\(from base\\)\\n$`));
    assert.equal(await ok('get', 'pe', 'r'), '1\n');
  });
});

describe('apply', () => {
  test('from a folder: one KEY.json per key; anything else refused, naming it', async () => {
    const folder = path.join(dir, 'keys');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'host.json'), '"db.local"\n');
    fs.writeFileSync(path.join(folder, 'pool.json'), '{ "size": 4 }');
    assert.match(await ok('apply', 'solo', folder), /^solo: revision \d+ \(2 keys changed\)\n$/);
    assert.equal(await ok('list', 'solo'), 'host = "db.local"\npool = {"size":4}\n');

    fs.writeFileSync(path.join(folder, 'notes.txt'), 'x');
    fs.writeFileSync(path.join(folder, 'README'), 'x');
    const other = await admin('apply', 'solo', folder);
    assert.equal(other.code, 1);
    assert.equal(other.stderr, `vitefa: ${folder} holds files not ending in .json: "README", "notes.txt" (one KEY.json file per key, nothing else)\n`);
    fs.rmSync(path.join(folder, 'notes.txt'));
    fs.rmSync(path.join(folder, 'README'));
    fs.mkdirSync(path.join(folder, 'sub'));
    const sub = await admin('apply', 'solo', folder);
    assert.equal(sub.code, 1);
    assert.match(sub.stderr, /holds subfolders, which apply does not read: "sub"/);
    fs.rmdirSync(path.join(folder, 'sub'));
    fs.writeFileSync(path.join(folder, 'bad.json'), '{"a":');
    const bad = await admin('apply', 'solo', folder);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, `vitefa: ${path.join(folder, 'bad.json')} is not valid JSON at character 6 (expected a value)\n`);
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const none = await admin('apply', 'solo', empty);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /holds no KEY\.json file: nothing to apply/);
  });

  test('--dry-run: the own changes and every view that would change, the environment first; nothing written', async () => {
    const file = path.join(dir, 'plan.json');
    fs.writeFileSync(file, JSON.stringify({ db: { host: 'b3' }, fresh: 1 }));
    const [latest] = (JSON.parse(await ok('--json', 'history', 'base', '--limit', '1')) as { releases: { rev: number }[] }).releases;
    const out = await ok('apply', 'base', file, '--dry-run', '--replace');
    assert.match(out, /^base at revision \d+: what apply would change \(dry run: nothing was written\)\n/);
    assert.match(out, /\n {2}added: fresh\n {2}changed: db\n {2}removed: k, through\nmerged views that would change:\n {2}base: 4 keys\n {2}pe: \d+ keys?\n {2}prod: \d+ keys?\n$/);
    const plan = JSON.parse(await ok('apply', 'base', file, '--dry-run', '--json')) as { env: string; added: string[]; changed: string[]; removed: string[]; views: { env: string }[] };
    assert.deepEqual([plan.env, plan.added, plan.changed, plan.removed], ['base', ['fresh'], ['db'], []]);
    assert.deepEqual(plan.views.map((v) => v.env), ['base', 'pe', 'prod']);
    const [after] = (JSON.parse(await ok('--json', 'history', 'base', '--limit', '1')) as { releases: { rev: number }[] }).releases;
    assert.equal(after.rev, latest.rev, 'no release was made');
    const wrong = await admin('set', 'base', 'x', '1', '--dry-run');
    assert.equal(wrong.code, 2);
    assert.equal(wrong.stderr, 'vitefa: --dry-run goes with apply only\n');
  });
});

test('the REPL: the same commands, and help names them', async () => {
  const r = await run(['admin', '--server', address], {
    input: 'help\nuse pe\nget db --explain\nenv layers pe --show\nhistory --own --limit 1\n',
    env: { VITEFA_HISTORY_FILE: path.join(dir, 'repl-history') },
  });
  assert.equal(r.code, 0, r.stderr);
  for (const usage of ['env layers ENV PARENT…', 'unset ENV KEY [PATH…]', 'apply ENV FILE|DIR [--replace] [--dry-run]', 'get ENV KEY [--raw] [--own | --explain]']) {
    assert.ok(r.stdout.includes(`  ${usage}`), usage);
  }
  assert.match(r.stdout, /pe> host +prod +@\d+ +admin\n/);
  assert.match(r.stdout, /order: base → prod → eu → pe\n/);
  assert.doesNotMatch(r.stdout, /error:/);
});

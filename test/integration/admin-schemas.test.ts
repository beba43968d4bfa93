/**
 * Schemas as an operator drives them with `vitefa admin`, one command a
 * run, against a real server of the embedded store: schema set in enforce
 * mode and a write it refuses (exit 1, a refused: line per violation, and
 * with --json the violations as data), a write in warn mode (exit 0, a
 * warning: line on stderr), status naming what fails, schema
 * list/get/history/rollback/del, a schema file that cannot be used, and the
 * REPL doing the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Procs, run, startServer, tempDir } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-admin-schemas-');
let address: string;

const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);

/** Runs a command that must succeed; its standard output. */
async function ok(...args: string[]): Promise<string> {
  const r = await admin(...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A schema file. */
function schemaFile(name: string, schema: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof schema === 'string' ? schema : `${JSON.stringify(schema, null, 2)}\n`);
  return file;
}

/** Lines of aligned columns, as their cells. */
function cells(text: string): string[][] {
  return text.trimEnd().split('\n').map((line) => line.split(/ {2,}/));
}

const POOL = { type: 'object', properties: { max: { type: 'integer', maximum: 500 } } };

before(async () => {
  const started = await startServer(path.join(dir, 'server'));
  procs.track(started.proc);
  address = started.address;
  for (const env of ['prod/eu', 'prod/us', 'dev']) await ok('env', 'add', env);
  await ok('set', 'prod/eu', 'db.pool', '{"max":100}');
});
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a schema in enforce mode', () => {
  test('schema set, then a write that fails it is refused (exit 1, refused: lines), one that passes is written', async () => {
    assert.match(await ok('schema', 'set', 'prod/*', 'db.*', schemaFile('pool.json', POOL)), /^schema prod\/\* db\.\*: v1, enforce mode \(revision \d+\)\n$/);

    const refused = await admin('set', 'prod/eu', 'db.pool', '{"max":900}');
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stdout, '');
    const lines = refused.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'vitefa: not applied: 1 schema violation');
    assert.match(lines[1], /^refused: prod\/eu db\.pool\.max .+ \(schema prod\/\* db\.\* v1, \/maximum\)$/);
    assert.equal(lines.length, 2);
    assert.equal(await ok('get', 'prod/eu', 'db.pool'), '{"max":100}\n', 'nothing was written');

    assert.match(await ok('set', 'prod/eu', 'db.pool', '{"max":200}'), /^prod\/eu: revision \d+ \(1 key changed\)\n$/);
    // Not covered: another environment, another key.
    await ok('set', 'dev', 'db.pool', '{"max":900}');
    await ok('set', 'prod/us', 'cache', '{"max":900}');
  });

  test('--json: the error with its violations as data on stdout, exit 1', async () => {
    const r = await admin('--json', 'merge', 'prod/us', 'db.main', '{"max":"many"}');
    assert.equal(r.code, 1, r.stderr);
    const error = JSON.parse(r.stdout) as { code: string; status: number; message: string; violations: Record<string, unknown>[]; more?: number };
    assert.equal(error.code, 'E_REMOTE_SCHEMA_VIOLATION');
    assert.equal(error.status, 209);
    assert.match(error.message, /^not applied: 1 schema violation\nrefused: /);
    assert.equal(error.violations.length, 1);
    assert.deepEqual(Object.keys(error.violations[0]).sort(), ['env', 'key', 'keyword', 'message', 'path', 'schema', 'version']);
    assert.deepEqual({ ...error.violations[0], message: '' }, { env: 'prod/us', key: 'db.main', path: '/max', keyword: 'type', message: '', schema: 'prod/* db.*', version: 1 });
    assert.equal(error.more, undefined);
    assert.match(r.stderr, /^vitefa: not applied: 1 schema violation\nrefused: prod\/us db\.main\.max /);
  });

  test('an enforced schema is refused while something it covers fails it', async () => {
    const r = await admin('schema', 'set', 'dev', 'db.*', schemaFile('pool-dev.json', POOL));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^vitefa: not applied: 1 schema violation\nfails: dev db\.pool\.max .+\(schema dev db\.\* v1, \/maximum\)\n$/);
  });
});

describe('a schema in warn mode', () => {
  test('a write that fails it is written (exit 0) with a warning: line on stderr; status and schema list count what fails', async () => {
    const set = await admin('schema', 'set', 'dev', '*', schemaFile('dev.json', { type: 'object', properties: { owner: { type: 'string' } }, required: ['owner'] }), '--mode', 'warn');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /^schema dev \*: v1, warn mode \(revision \d+\); 1 key fails it now\n$/);
    assert.match(set.stderr, /^warning: dev db\.pool .+ \(schema dev \* v1, \/required\)\n$/);

    const w = await admin('set', 'dev', 'cache', '{"size":1}');
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /^dev: revision \d+ \(1 key changed\)\n$/);
    assert.match(w.stderr, /^warning: dev cache .+ \(schema dev \* v1, \/required\)\n$/);
    assert.equal(await ok('get', 'dev', 'cache'), '{"size":1}\n', 'written');
    const json = await admin('--json', 'set', 'dev', 'other', '{}');
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as { warnings?: unknown[] }).warnings?.length, 1);

    assert.match(await ok('status'), /\nschema warnings: dev \* v1: 3 keys fail \(warn mode\)\n/);
    const list = cells(await ok('schema', 'list'));
    assert.deepEqual(list[0], ['ENV_PATTERN', 'KEY_PATTERN', 'WHOLE', 'MODE', 'VERSION', 'FAILING', 'AUTHOR']);
    assert.deepEqual(list.slice(1).sort(), [['dev', '*', 'no', 'warn', '1', '3', 'admin'], ['prod/*', 'db.*', 'no', 'enforce', '1', '-', 'admin']]);
    assert.deepEqual(cells(await ok('schema', 'list', 'prod/eu')).slice(1), [['prod/*', 'db.*', 'no', 'enforce', '1', '-', 'admin']]);
    const data = JSON.parse(await ok('--json', 'schema', 'list', 'dev')) as { schemas: { envPattern: string; failing?: number }[] };
    assert.deepEqual(data.schemas.map((s) => [s.envPattern, s.failing]), [['dev', 3]]);
  });
});

describe('versions', () => {
  test('schema get prints a header and the schema; history one line per version; rollback and del make new versions', async () => {
    await ok('schema', 'set', 'prod/*', 'db.*', schemaFile('pool-warn.json', { ...POOL, title: 'pools' }), '--mode', 'warn');
    const got = await ok('schema', 'get', 'prod/*', 'db.*');
    assert.match(got, /^schema prod\/\* db\.\* v2 {2}warn {2}by admin {2}\d{4}-\d\d-\d\dT[\d:.]+Z\n\{\n {2}"/);
    assert.deepEqual(JSON.parse(got.slice(got.indexOf('\n') + 1)), { ...POOL, title: 'pools' });
    assert.match(await ok('schema', 'get', 'prod/*', 'db.*', '--version', '1'), /^schema prod\/\* db\.\* v1 {2}enforce {2}by admin /);
    const json = JSON.parse(await ok('--json', 'schema', 'get', 'prod/*', 'db.*')) as { version: number; mode: string; schema: string };
    assert.equal(json.version, 2);
    assert.equal(json.mode, 'warn');
    assert.deepEqual(JSON.parse(json.schema), { ...POOL, title: 'pools' });

    assert.match(await ok('schema', 'rollback', 'prod/*', 'db.*', '1'), /^schema prod\/\* db\.\*: v3, the schema of v1 again, enforce mode \(revision \d+\)\n$/);
    assert.equal((await admin('set', 'prod/eu', 'db.pool', '{"max":900}')).code, 1, 'enforced again');
    assert.match(await ok('schema', 'del', 'prod/*', 'db.*'), /^schema prod\/\* db\.\*: deleted \(v4, revision \d+\)\n$/);
    await ok('set', 'prod/eu', 'db.pool', '{"max":900}');
    await ok('set', 'prod/eu', 'db.pool', '{"max":100}');

    const history = (await ok('schema', 'history', 'prod/*', 'db.*')).trimEnd().split('\n');
    assert.equal(history.length, 4);
    assert.match(history[0], /^v4 {2}rev \d+ {2}\S+ {2}deleted {2}by admin$/);
    assert.match(history[1], /^v3 {2}rev \d+ {2}\S+ {2}enforce {2}by admin {2}\d+ B$/);
    assert.match(history[2], /^v2 {2}rev \d+ {2}\S+ {2}warn {2}by admin {2}\d+ B$/);
    assert.match(history[3], /^v1 {2}rev \d+ {2}\S+ {2}enforce {2}by admin {2}\d+ B$/);
    assert.deepEqual(cells(await ok('schema', 'list', 'prod/eu')).slice(1), []);
  });

  test('a schema file missing or not JSON: E_BAD_FILE, exit 1, nothing sent; usage errors exit 2', async () => {
    const missing = await admin('schema', 'set', 'dev', 'x', path.join(dir, 'absent.json'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^vitefa: cannot read .*absent\.json: ENOENT\n$/);
    const broken = await admin('schema', 'set', 'dev', 'x', schemaFile('broken.json', '{"type": '));
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /^vitefa: .*broken\.json is not valid JSON at character \d+/);
    for (const args of [['schema', 'get', 'dev'], ['schema', 'set', 'dev', 'x', schemaFile('ok.json', {}), '--mode', 'loud'], ['schema', 'list', '--whole'], ['get', 'dev', 'x', '--allow-growth']]) {
      const r = await admin(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^vitefa: .+\n$/);
    }
    assert.doesNotMatch(await ok('schema', 'list'), /\nx /);
  });

  test('many violations: 20 lines, then how many more (refused, warned, and in --json)', async () => {
    await ok('env', 'add', 'bulk');
    const file = path.join(dir, 'bulk.json');
    fs.writeFileSync(file, JSON.stringify(Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`k${String(i).padStart(2, '0')}`, 'text']))));
    const schema = schemaFile('int.json', { type: 'integer' });
    await ok('schema', 'set', 'bulk', 'k*', schema);
    const refused = await admin('apply', 'bulk', file);
    assert.equal(refused.code, 1, refused.stderr);
    const lines = refused.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'vitefa: not applied: 25 schema violations');
    assert.equal(lines.filter((l) => l.startsWith('refused: bulk k')).length, 20);
    assert.equal(lines.at(-1), '… and 5 more');
    assert.equal(lines.length, 22);
    const json = JSON.parse((await admin('apply', 'bulk', file, '--json')).stdout) as { violations: unknown[]; more?: number };
    assert.equal(json.violations.length, 20);
    assert.equal(json.more, 5);

    await ok('schema', 'set', 'bulk', 'k*', schema, '--mode', 'warn');
    const warned = await admin('apply', 'bulk', file);
    assert.equal(warned.code, 0, warned.stderr);
    const warnings = warned.stderr.trimEnd().split('\n');
    assert.equal(warnings.filter((l) => /^warning: bulk k\d\d .+ \(schema bulk k\* v2, \/type\)$/.test(l)).length, 20);
    assert.equal(warnings.at(-1), '… and 5 more');
    assert.equal(warnings.length, 21);
  });

  test('schema writes carry a request id: the same id twice applies once', async () => {
    const schema = schemaFile('rid.json', { type: 'string' });
    const first = await ok('--request-id', 'schema-rid-1', 'schema', 'set', 'dev', 'rid.*', schema);
    assert.match(first, /^schema dev rid\.\*: v1, enforce mode/);
    assert.match(await ok('schema', 'set', 'dev', 'rid.*', schema, '--request-id', 'schema-rid-1'), /^schema dev rid\.\*: this request id was applied before, as version 1 \(revision \d+\); nothing was written now\n$/);
    assert.equal((await ok('schema', 'history', 'dev', 'rid.*')).trimEnd().split('\n').length, 1);
  });

  test('--allow-growth is sent with a write', async () => {
    assert.match(await ok('set', 'dev', 'grown', '"x"', '--allow-growth'), /^dev: revision \d+ \(1 key changed\)\n$/);
  });
});

test('the REPL: the same commands, help names them, a refusal prints its lines', async () => {
  const r = await run(['admin', '--server', address], {
    input: 'help schema\nschema list\nschema history dev *\nschema set prod/* db.* ' + schemaFile('repl.json', POOL) + '\nuse prod/eu\nset db.pool {"max":9000}\nget db.pool\n',
    env: { VITEFA_HISTORY_FILE: path.join(dir, 'repl-history') },
  });
  assert.equal(r.code, 0, r.stderr);
  for (const name of ['set', 'get', 'del', 'list', 'history', 'rollback']) assert.ok(r.stdout.includes(`usage: schema ${name} `), name);
  assert.match(r.stdout, /\ndev +\* +no +warn +1 +\d+ +admin\n/);
  assert.match(r.stdout, /v1 {2}rev \d+ .+ {2}warn {2}by admin/);
  assert.match(r.stdout, /error: not applied: 1 schema violation\nrefused: prod\/eu db\.pool\.max .+\(schema prod\/\* db\.\* v5, \/maximum\)\n/);
  assert.match(r.stdout, /prod\/eu> \{"max":100\}\n/, 'not written');
});

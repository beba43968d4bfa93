/**
 * Nothing a client, an editor or a store sends acts on an operator's
 * terminal: the server refuses control characters in the names it shows
 * (who logs in, agent ids), and the admin tool and `vitefa read` show every
 * control character escaped — tables, values, the audit, status, errors and
 * the REPL — while --json and --raw stay exact.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LocalStore } from '../../src/agent/local-store.js';
import { formatRelease, formatResult } from '../../src/admin/format.js';
import { printable } from '../../src/printable.js';
import {
  MessageType, PROTOCOL_VERSION, WireError,
  type AdminRequest, type ErrorMessage, type Message, type ResultOf,
} from '../../src/protocol/index.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { Proc, Procs, run, startServer, tempDir } from '../support/procs.js';

const ESC = '\x1b';
/** The audit reproduction: erase the line, go up one, set the window title. */
const FORGED_USER = `x${ESC}[2K${ESC}[1A${ESC}]0;owned${ESC}\\2026-12-01T08:00:00Z  admin  10.0.0.1  login  ok`;
/** The status reproduction: red, then a new line holding a forged row. */
const FORGED_AGENT = `web-1${ESC}[31m\r\nforged-agent  10.0.0.9:1  prod@7`;
/** The value reproduction: clear the screen. */
const CLEAR_SCREEN = `${ESC}[2J${ESC}[Hall is well`;
/** Anything a terminal acts on: C0 and C1 controls, DEL, separators, bidi overrides. */
// eslint-disable-next-line no-control-regex -- what a terminal acts on is control characters: matching them is the point
const ACTS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const isError = (m: Message): m is ErrorMessage => m.t === MessageType.Error;

describe('the server refuses control characters in the names it shows', () => {
  let mem: MemoryServer;
  before(async () => {
    mem = await memoryServer();
  });
  after(() => mem.close());

  const hello = (role: 'admin' | 'agent', id: string, user: string): Message => (
    { t: MessageType.Hello, v: PROTOCOL_VERSION, role, id, user, nonce: 'bm9uY2Utbm9uY2Utbm9uY2U=' }
  );

  for (const [what, message] of [
    ['an admin hello whose user name erases lines and sets the title', hello('admin', 'ops', FORGED_USER)],
    ['an agent hello whose id changes colour and starts a line', hello('agent', FORGED_AGENT, '000000000000')],
    ['a hello whose id holds a C1 CSI', hello('admin', 'ops\u009b2J', 'admin')],
    ['a hello whose user holds a bidi override', hello('admin', 'ops', 'adm\u202enimda')],
  ] as const) {
    test(`${what}: MALFORMED, one error frame and the close, and nothing audited`, async () => {
      const peer = mem.connect();
      await peer.next((m): m is Message => m.t === MessageType.Hello);
      const from = peer.received.length;
      peer.send(message);
      const error = await peer.next(isError, from);
      assert.equal(error.code, WireError.MALFORMED, error.msg);
      assert.match(error.msg, /without control characters/);
      assert.doesNotMatch(error.msg, ACTS, 'the refusal does not echo the name');
      await peer.whenClosed();
      assert.equal(peer.received.slice(from).length, 1);
      const { entries } = await mem.server.access.execute({ op: 'audit' }, { account: 'admin', addr: 'test:0' }) as ResultOf['audit'];
      assert.ok(entries.every((e) => !ACTS.test(JSON.stringify(e)) && !ACTS.test(e.actor)), 'no audit entry holds a control character');
    });
  }

  test('keys hold no C1 control or bidi override either (a key is shown in every list)', async () => {
    await mem.server.hub.execute({ op: 'env.add', env: 'keys' }, 'admin');
    for (const key of ['a\u009bb', 'a\u202eb', 'a\u2028b', `a${ESC}b`]) {
      await assert.rejects(mem.server.hub.execute({ op: 'set', env: 'keys', key, value: '1' }, 'admin'), (err: Error & { status?: number }) => err.status === WireError.INVALID_VALUE);
    }
  });
});

describe('the admin shows what it was sent with control characters escaped', () => {
  const style = undefined;
  const lines = (text: string): string[] => text.split('\n');

  test('audit: a row written with the forged name stays one row, shown escaped', () => {
    const result: ResultOf['audit'] = {
      entries: [
        { seq: 2, time: Date.parse('2026-12-01T09:00:00Z'), actor: FORGED_USER, addr: '203.0.113.5:4000', action: 'login', env: '', result: 'failed', code: 'AUTH_FAILED', detail: `no account${ESC}[8m of that name` },
        { seq: 1, time: Date.parse('2026-12-01T08:59:00Z'), actor: 'admin', addr: '10.0.0.1:1', action: 'set', env: 'prod', result: 'ok', code: '', detail: 'key db' },
      ],
    };
    const text = formatResult({ op: 'audit' }, result, 'text', style);
    assert.doesNotMatch(text, ACTS);
    assert.equal(lines(text).length, 3, 'a header and two rows');
    assert.ok(text.includes(printable(FORGED_USER)), text);
    assert.match(text, /x\\u001b\[2K\\u001b\[1A\\u001b\]0;owned/);
    // --json is exact: the same entries back.
    assert.deepEqual(JSON.parse(formatResult({ op: 'audit' }, result, 'json', style)), result);
  });

  test('status: an agent id with a colour and a line break stays in its row', () => {
    const agent = { id: FORGED_AGENT, addr: '10.0.0.5:3000', since: 0, envs: [{ env: 'prod', rev: 7 }], ackedMs: 1000 };
    const result: ResultOf['status'] = {
      server: { id: 'srv-1', version: '0.1.0', listen: '127.0.0.1:7400', store: 'lmdb', uptimeMs: 1000, workers: 0, counters: {} },
      envs: [{ env: 'prod', rev: 7, keys: 1 }],
      agentsTotal: 1,
      agents: [agent],
      cluster: {
        head: 7,
        servers: [{ id: 'srv-1', gen: 1, state: 'alive', addrs: ['127.0.0.1:7400'], head: 7, lag: 0, agents: 1, heardMs: 0, answered: true }],
        envs: [{ env: 'prod', rev: 7, holders: [[6, 1, '']], lagging: [{ id: FORGED_AGENT, addr: '10.0.0.5:3000', server: 'srv-1', rev: 6 }], laggingTotal: 1 }],
        found: [{ ...agent, server: 'srv-1' }],
      },
    };
    const text = formatResult({ op: 'status' }, result, 'text', style);
    assert.doesNotMatch(text, ACTS);
    assert.doesNotMatch(text, /^forged-agent/m, 'no row starts with the forged text');
    const rows = lines(text).filter((l) => l.includes('forged-agent'));
    assert.equal(rows.length, 3, 'the id shows in the lagging, found and agents tables, once each');
    for (const row of rows) assert.ok(row.startsWith(printable(FORGED_AGENT)), row);
  });

  test('get: the value escaped; --raw exactly as stored; --json exactly as answered', () => {
    const req: AdminRequest = { op: 'get', env: 'prod', key: 'banner' };
    const result: ResultOf['get'] = { env: 'prod', rev: 3, key: 'banner', value: JSON.stringify(CLEAR_SCREEN) };
    assert.equal(formatResult(req, result, 'text', style), '\\u001b[2J\\u001b[Hall is well');
    assert.equal(formatResult(req, result, 'raw', style), CLEAR_SCREEN);
    assert.equal(formatResult(req, result, 'json', style), JSON.stringify(result));
    // A string's own line breaks and tabs stay (a value printed alone); a carriage return does not.
    const multi: ResultOf['get'] = { ...result, value: JSON.stringify('line 1\n\tline 2\rover') };
    assert.equal(formatResult(req, multi, 'text', style), 'line 1\n\tline 2\\rover');
    // JSON values: C1 controls as \u escapes, which a JSON reader takes as the same characters.
    const object: ResultOf['get'] = { ...result, value: JSON.stringify({ a: 'x\u009b2J' }) };
    const shown = formatResult(req, object, 'text', style);
    assert.doesNotMatch(shown, ACTS);
    assert.deepEqual(JSON.parse(shown), { a: 'x\u009b2J' });
  });

  test('list, history, a replayed write and a watched release: escaped too', () => {
    const list = formatResult({ op: 'list', env: 'prod' }, { env: 'prod', rev: 3, entries: [['banner', JSON.stringify(`a\u009b2Jb`)]] }, 'text', style);
    assert.doesNotMatch(list, ACTS);
    const history = formatResult({ op: 'history', env: 'prod' }, {
      env: 'prod', releases: [{ rev: 3, prev: 2, time: 0, author: `ed${ESC}[2K`, op: 'set', changes: [['banner', null, JSON.stringify('x\u0085y')]] }],
    }, 'text', style);
    assert.doesNotMatch(history, ACTS);
    assert.match(history, /by ed\\u001b\[2K/);
    const release = formatRelease({ t: MessageType.Release, env: 'prod', rev: 4, prev: 3, time: 0, author: `ed${ESC}[2K`, op: 'set', changes: [['banner', JSON.stringify('\u202eevil')]] }, undefined, style);
    assert.doesNotMatch(release ?? '', ACTS);
  });
});

describe('real processes: the admin tool and vitefa read', () => {
  const procs = new Procs();
  const dir = tempDir('vitefa-escapes-');
  let address: string;
  before(async () => {
    const started = await startServer(path.join(dir, 'server'));
    procs.track(started.proc);
    address = started.address;
    assert.equal((await run(['admin', '--server', address, 'env', 'add', 'screen'])).code, 0);
    // An editor's value that clears the screen (JSON text, as any client may send it).
    const set = await run(['admin', '--server', address, 'set', 'screen', 'banner', JSON.stringify(CLEAR_SCREEN)]);
    assert.equal(set.code, 0, set.stderr);
  });
  after(async () => {
    await procs.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('get prints the value escaped, get --raw exactly, get --json exactly; --raw goes with get only', async () => {
    const shown = await run(['admin', '--server', address, 'get', 'screen', 'banner']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout, '\\u001b[2J\\u001b[Hall is well\n');
    const raw = await run(['admin', '--server', address, 'get', 'screen', 'banner', '--raw']);
    assert.equal(raw.stdout, `${CLEAR_SCREEN}\n`);
    const json = await run(['admin', '--server', address, '--json', 'get', 'screen', 'banner']);
    assert.equal(JSON.parse((JSON.parse(json.stdout) as { value: string }).value), CLEAR_SCREEN);
    const misuse = await run(['admin', '--server', address, 'list', 'screen', '--raw']);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--raw goes with get only/);
  });

  test('an error quoting what was typed or sent shows it escaped', async () => {
    const missing = await run(['admin', '--server', address, 'get', 'screen', `k${ESC}[2J`]);
    assert.equal(missing.code, 1);
    assert.doesNotMatch(missing.stderr, ACTS);
    assert.match(missing.stderr, /k\\u001b\[2J/);
  });

  test('the REPL shows values and errors escaped', async () => {
    const repl = new Proc(['admin', '--server', address], { input: `get screen banner\nget screen k${ESC}]0;owned\x07\n` });
    procs.track(repl);
    assert.equal(await repl.exited, 0, repl.output);
    assert.doesNotMatch(repl.stdout, ACTS);
    assert.match(repl.stdout, /\\u001b\[2J\\u001b\[Hall is well/);
    assert.match(repl.stdout, /error: key k\\u001b\]0;owned\\u0007 does not exist/);
  });

  test('vitefa read: escaped for people, exact with --raw and --json', async () => {
    const store = path.join(dir, 'agent');
    const local = LocalStore.open(store, { mapSize: 16 * 1024 * 1024 });
    local.applySnapshot({ t: MessageType.Snapshot, env: 'screen', rev: 2, entries: [['banner', JSON.stringify(CLEAR_SCREEN)], ['cert', JSON.stringify('-----BEGIN-----\nAAAA\n-----END-----')], ['obj', JSON.stringify({ a: 'x\u009b2J' })]] });
    await local.close();
    const read = (...args: string[]) => run(['read', '--store', store, ...args]);
    const value = await read('screen', 'banner');
    assert.equal(value.code, 0, value.stderr);
    assert.equal(value.stdout, '\\u001b[2J\\u001b[Hall is well\n');
    assert.equal((await read('screen', 'banner', '--raw')).stdout, `${CLEAR_SCREEN}\n`);
    assert.equal((await read('screen', 'banner', '--json')).stdout, `${JSON.stringify(CLEAR_SCREEN)}\n`);
    assert.equal((await read('screen', 'cert')).stdout, '-----BEGIN-----\nAAAA\n-----END-----\n', 'a value\'s own lines stay');
    const obj = await read('screen', 'obj');
    assert.doesNotMatch(obj.stdout, ACTS);
    assert.deepEqual(JSON.parse(obj.stdout), { a: 'x\u009b2J' });
    const all = await read('screen');
    assert.doesNotMatch(all.stdout, ACTS);
    assert.equal((JSON.parse(all.stdout) as { banner: unknown }).banner, CLEAR_SCREEN, 'the environment as JSON means the same');
    const missing = await read('screen', `k${ESC}]0;owned${ESC}\\`);
    assert.equal(missing.code, 1);
    assert.doesNotMatch(missing.stderr, ACTS);
  });
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { LocalStore, READER_CHECK_MS } from '../../src/agent/local-store.js';
import { MessageType } from '../../src/protocol/index.js';
import { ConfigReader } from '../../src/reader/index.js';
import { tempDir } from '../support/common.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function fresh(): { dir: string; store: LocalStore } {
  const dir = tempDir('vitefa-local-');
  dirs.push(dir);
  return { dir, store: LocalStore.open(dir, { mapSize: 16 * 1024 * 1024 }) };
}

// lmdb-js renews its shared read transaction from a timer: reads in one synchronous run share a snapshot.
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 5));

const release = (env: string, rev: number, prev: number, changes: [string, string | null][], drop?: boolean) => ({
  t: MessageType.Release, env, rev, prev, time: 0, author: 't', op: 'set', changes, ...(drop ? { drop } : {}),
});

test('releases, snapshots and drops land with the revision, and the reader sees them', async () => {
  const { dir, store } = fresh();
  store.applyRelease(release('prod', 3, 0, [['db/host', '"a"'], ['limit', '10']]));
  store.applyRelease(release('staging', 4, 0, [['x', 'true']]));
  store.applyRelease(release('prod', 7, 3, [['limit', null], ['flag', '{"on":true}']]));
  assert.deepEqual(store.held(), [{ env: 'prod', rev: 7 }, { env: 'staging', rev: 4 }]);
  const reader = ConfigReader.open(dir);
  assert.equal(reader.get('prod', 'db/host'), 'a');
  assert.equal(reader.get('prod', 'limit'), undefined);
  assert.deepEqual(reader.list('prod'), { 'db/host': 'a', flag: { on: true } });
  assert.equal(reader.revision('prod'), 7);
  assert.deepEqual(reader.envs(), ['prod', 'staging']);
  store.applySnapshot({ t: MessageType.Snapshot, env: 'prod', rev: 9, entries: [['only', '1']] });
  await nextTurn(); // a reader takes a new snapshot on the next event-loop turn
  assert.deepEqual(reader.list('prod'), { only: 1 });
  store.applyRelease(release('staging', 10, 4, [], true));
  await nextTurn();
  assert.deepEqual(reader.envs(), ['prod']);
  assert.equal(reader.revision('staging'), 0);
  assert.deepEqual(reader.list('staging'), {});
  await reader.close();
  await store.close();
});

test('an environment whose name is a prefix of another stays separate', async () => {
  const { dir, store } = fresh();
  store.applyRelease(release('a', 1, 0, [['k', '1']]));
  store.applyRelease(release('ab', 2, 0, [['k', '2']]));
  store.applySnapshot({ t: MessageType.Snapshot, env: 'a', rev: 3, entries: [] });
  await nextTurn();
  const reader = ConfigReader.open(dir);
  assert.deepEqual(reader.list('a'), {});
  assert.deepEqual(reader.list('ab'), { k: 2 });
  await reader.close();
  await store.close();
});

test('waitForChange resolves on the next commit and on timeout', async () => {
  const { dir, store } = fresh();
  store.applyRelease(release('e', 1, 0, [['k', '1']]));
  const reader = ConfigReader.open(dir);
  const waiting = reader.waitForChange('e', 1, { timeoutMs: 5000 });
  setTimeout(() => store.applyRelease(release('e', 2, 1, [['k', '2']])), 50);
  assert.equal(await waiting, 2);
  assert.equal(await reader.waitForChange('e', 2, { timeoutMs: 50 }), 2);
  assert.equal(await reader.waitForChange('e', 1), 2, 'already past: resolves at once');
  await reader.close();
  await store.close();
});

test("the store is in LMDB's 0.9 data format: Debian's mdb_dump and Python's lmdb read it", async () => {
  const { dir, store } = fresh();
  store.applyRelease(release('prod', 5, 0, [['db/host', '"db1.internal"'], ['pool', '{"max":20}']]));
  await store.close();
  const dump = execFileSync('mdb_dump', ['-p', '-s', 'values', dir], { encoding: 'utf8' });
  assert.match(dump, /prod\\00db\/host\n "db1.internal"/);
  const script = [
    'import lmdb, sys',
    'env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=4)',
    'values = env.open_db(b"values"); revs = env.open_db(b"revisions")',
    'with env.begin() as t:',
    '    print(t.get(b"prod\\x00pool", db=values).decode(), t.get(b"prod", db=revs).decode())',
  ].join('\n');
  const out = execFileSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(out.trim(), '{"max":20} 5');
});

test('get serves repeated reads from its cache until the revision moves, and its values are frozen', async () => {
  const { dir, store } = fresh();
  store.applyRelease(release('e', 1, 0, [['obj', '{"hosts":["a"]}']]));
  const reader = ConfigReader.open(dir);
  const first = reader.get('e', 'obj') as { hosts: string[] };
  assert.deepEqual(first, { hosts: ['a'] });
  assert.equal(reader.get('e', 'obj'), first, 'the same object while the revision stays');
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.hosts));
  assert.throws(() => first.hosts.push('b'), TypeError);
  assert.equal(reader.get('e', 'later'), undefined);
  store.applyRelease(release('e', 2, 1, [['obj', '{"hosts":["b"]}'], ['later', '7']]));
  await nextTurn();
  assert.deepEqual(reader.get('e', 'obj'), { hosts: ['b'] });
  assert.equal(reader.get('e', 'later'), 7, 'an absent key is looked up again after a release');
  store.applyRelease(release('e', 3, 2, [], true));
  await nextTurn();
  assert.equal(reader.get('e', 'obj'), undefined, 'a dropped environment is gone from the cache too');
  await reader.close();
  await store.close();
});

test('list keeps a key named __proto__ (and constructor) as a plain key', async () => {
  const { dir, store } = fresh();
  store.applySnapshot({ t: MessageType.Snapshot, env: 'prod', rev: 2, entries: [['__proto__', '{"polluted":true}'], ['constructor', '1'], ['a', '2']] });
  const reader = ConfigReader.open(dir);
  const all = reader.list('prod');
  assert.deepEqual(Object.keys(all).sort(), ['__proto__', 'a', 'constructor']);
  assert.deepEqual(Object.getOwnPropertyDescriptor(all, '__proto__')?.value, { polluted: true });
  assert.equal(Object.getPrototypeOf(all), Object.prototype, 'the prototype is untouched');
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  assert.deepEqual(reader.get('prod', '__proto__'), { polluted: true });
  await reader.close();
  await store.close();
});

test('a reader killed while reading does not pin old pages for good: the next write clears its slot and the file stays small', async () => {
  const dir = tempDir('vitefa-local-');
  dirs.push(dir);
  const cleared: number[] = [];
  const store = LocalStore.open(dir, { mapSize: 256 * 1024 * 1024, staleReaders: (n) => cleared.push(n) });
  const big = JSON.stringify('x'.repeat(1024 * 1024));
  store.applyRelease(release('prod', 1, 0, [['big', big]]));
  // A reader process that reads, then hangs inside its read transaction until it is killed.
  const script = `
    import { ConfigReader } from ${JSON.stringify(new URL('../../src/reader/index.ts', import.meta.url).href)};
    const reader = ConfigReader.open(${JSON.stringify(dir)});
    reader.get('prod', 'big');
    process.stdout.write('reading\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0));
  `;
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('reading') && resolve());
    child.once('exit', (code) => reject(new Error(`reader exited with ${code}`)));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  // The writes look at the reader table at most once per READER_CHECK_MS: the next write comes after that (pacing, not
  // a wait to show that nothing happened; the clearing is checked below).
  await new Promise((resolve) => setTimeout(resolve, READER_CHECK_MS));
  // Forty releases of a 1 MiB value: with the dead reader's slot kept, each would take new pages.
  for (let rev = 2; rev <= 41; rev++) {
    store.applyRelease(release('prod', rev, rev - 1, [['big', JSON.stringify(String(rev).repeat(1024 * 1024 / 2))]]));
  }
  const pages = (store as unknown as { root: { getStats(): { lastPageNumber: number; pageSize: number } } }).root.getStats();
  await store.close();
  assert.deepEqual(cleared, [1], 'the dead reader\'s slot was cleared once');
  const used = pages.lastPageNumber * pages.pageSize;
  assert.ok(used < 12 * 1024 * 1024, `the store uses ${(used / 1048576).toFixed(1)} MiB after 40 releases of 1 MiB`);
});

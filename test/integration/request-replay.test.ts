/**
 * A request id promises exactly once for one write of one account: the same
 * request sent again by its author is answered as a replay of the earlier
 * write (with its revision); the id sent by another account, or with
 * another request, is refused naming the id, and nothing is written.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WireError, type AdminRequest, type ResultOf } from '../../src/protocol/index.js';
import { replayRefusal, requestDigest, type RequestRecord } from '../../src/server/store/requests.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { Procs, run, startServer, tempDir } from '../support/procs.js';

const refusedNaming = (rid: string) => (err: Error & { status?: number }): boolean =>
  err.status === WireError.BAD_REQUEST && err.message.includes(`request id ${rid} `);

describe('which request a kept id answers', () => {
  const set: AdminRequest = { op: 'set', env: 'shop', key: 'feature', value: '"off"' };
  const kept: RequestRecord = { env: 'shop', rev: 2, changed: 1, time: 0, author: 'ed', op: 'set', digest: requestDigest(set) };
  const origin = (req: AdminRequest, author: string) => ({ rid: 'deploy-42', author, op: req.op, env: 'shop', digest: requestDigest(req) });

  test('the same request by the same account is a retry; anything else is refused', () => {
    assert.equal(replayRefusal(kept, origin(set, 'ed')), undefined);
    assert.match(replayRefusal(kept, origin(set, 'admin')) ?? '', /^request id deploy-42 was used by another account/);
    assert.doesNotMatch(replayRefusal(kept, origin(set, 'admin')) ?? '', /shop|@2/, 'another account learns nothing of the write');
    assert.match(replayRefusal(kept, origin({ ...set, value: '"on"' }, 'ed')) ?? '', /^request id deploy-42 was used for shop@2 by another request \(set\)/);
    assert.match(replayRefusal(kept, origin({ op: 'del', env: 'shop', key: 'feature' }, 'ed')) ?? '', /deploy-42/);
    assert.match(replayRefusal(kept, { ...origin(set, 'ed'), env: 'other' }) ?? '', /deploy-42/);
  });

  test('an id kept before authors were matches any account, as it did', () => {
    const old: RequestRecord = { env: 'shop', rev: 2, changed: 1, time: 0 };
    assert.equal(replayRefusal(old, origin(set, 'admin')), undefined);
    assert.equal(replayRefusal({ ...old, author: '', op: '', digest: '' }, origin(set, 'admin')), undefined);
    assert.match(replayRefusal(old, { ...origin(set, 'ed'), env: 'other' }) ?? '', /deploy-42/);
  });

  test('the digest of a request does not depend on the order of its fields', () => {
    assert.equal(requestDigest({ op: 'set', env: 'e', key: 'k', value: '1' }), requestDigest({ value: '1', key: 'k', env: 'e', op: 'set' }));
    assert.notEqual(requestDigest({ op: 'set', env: 'e', key: 'k', value: '1' }), requestDigest({ op: 'set', env: 'e', key: 'k', value: '2' }));
  });
});

describe('through access control (the embedded store)', () => {
  let mem: MemoryServer;
  const ed = { account: 'ed', addr: '10.0.0.2:1', requestId: 'deploy-42' };
  const admin = { account: 'admin', addr: '10.0.0.1:1', requestId: 'deploy-42' };
  before(async () => {
    mem = await memoryServer();
    await mem.server.hub.execute({ op: 'env.add', env: 'shop' }, 'admin');
    await mem.account('ed', 'editor', ['shop']);
  });
  after(() => mem.close());

  const get = async (): Promise<string> => (await mem.server.hub.execute({ op: 'get', env: 'shop', key: 'feature' }, 'admin')).value;

  test('the reproduction: the admin\'s write with the editor\'s id is refused, naming the id; the editor\'s retry is a replay with its revision', async () => {
    const first = await mem.server.access.execute({ op: 'set', env: 'shop', key: 'feature', value: '"off"' }, ed) as ResultOf['set'];
    assert.equal(first.replayed, undefined);
    await assert.rejects(mem.server.access.execute({ op: 'set', env: 'shop', key: 'feature', value: '"on"' }, admin), refusedNaming('deploy-42'));
    assert.equal(await get(), '"off"');
    // The same id and value from the admin too: not the admin's write.
    await assert.rejects(mem.server.access.execute({ op: 'set', env: 'shop', key: 'feature', value: '"off"' }, admin), refusedNaming('deploy-42'));
    const again = await mem.server.access.execute({ op: 'set', env: 'shop', key: 'feature', value: '"off"' }, ed) as ResultOf['set'];
    assert.deepEqual(again, { ...first, replayed: true });
    // The editor's other request with the same id: refused too.
    await assert.rejects(mem.server.access.execute({ op: 'set', env: 'shop', key: 'feature', value: '"on"' }, ed), refusedNaming('deploy-42'));
    await assert.rejects(mem.server.access.execute({ op: 'del', env: 'shop', key: 'feature' }, ed), refusedNaming('deploy-42'));
    assert.equal(await get(), '"off"');
    const { entries } = await mem.server.access.execute({ op: 'audit', user: 'admin', limit: 5 }, { account: 'admin', addr: 'test:0' }) as ResultOf['audit'];
    const refusal = entries.find((e) => e.action === 'set' && e.result === 'refused');
    assert.equal(refusal?.code, 'BAD_REQUEST');
    assert.match(refusal?.detail ?? '', /deploy-42/);
  });
});

describe('the admin tool (a real server)', () => {
  const procs = new Procs();
  const dir = tempDir('vitefa-replay-');
  let address: string;
  const asEd = { env: { VITEFA_USER: 'ed', VITEFA_PASSWORD: 'ed-password-1' } };
  before(async () => {
    const started = await startServer(path.join(dir, 'server'));
    procs.track(started.proc);
    address = started.address;
    assert.equal((await run(['admin', '--server', address, 'env', 'add', 'shop'])).code, 0);
    const made = await run(['admin', '--server', address, 'user', 'add', 'ed', 'editor', 'shop'], { env: { VITEFA_NEW_PASSWORD: 'ed-password-1' } });
    assert.equal(made.code, 0, made.stderr);
  });
  after(async () => {
    await procs.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('another account\'s write with a kept id exits 1 naming the id; the author\'s rerun says it is a replay of its revision', async () => {
    const first = await run(['admin', '--server', address, '--request-id', 'deploy-42', 'set', 'shop', 'feature', 'off'], asEd);
    assert.equal(first.code, 0, first.stderr);
    const rev = /revision (\d+) \(1 key changed\)/.exec(first.stdout)?.[1];
    assert.ok(rev !== undefined, first.stdout);
    const other = await run(['admin', '--server', address, '--request-id', 'deploy-42', 'set', 'shop', 'feature', 'on']);
    assert.equal(other.code, 1, other.stdout);
    assert.match(other.stderr, /request id deploy-42 was used by another account; give this write an id of its own/);
    assert.equal((await run(['admin', '--server', address, 'get', 'shop', 'feature'])).stdout, 'off\n');
    const rerun = await run(['admin', '--server', address, '--request-id', 'deploy-42', 'set', 'shop', 'feature', 'off'], asEd);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(rerun.stdout, `shop: this request id was applied before, as revision ${rev} (1 key changed); nothing was written now\n`);
    const json = await run(['admin', '--server', address, '--request-id', 'deploy-42', '--json', 'set', 'shop', 'feature', 'off'], asEd);
    assert.deepEqual(JSON.parse(json.stdout), { env: 'shop', rev: Number(rev), changed: 1, replayed: true });
  });
});

/**
 * Definite answers while the database hangs (a proxy holds every byte, as a
 * SIGSTOPped mariadbd does, without freezing the database other tests use):
 * a write the server gives up on before its COMMIT is answered "not applied"
 * and stays unapplied after the database resumes; a write whose COMMIT was
 * on its way is answered "outcome unknown" with the revision to look for,
 * exit status 3, and that revision is there once the database answers.
 * Retries apply once: the same request id from two runs makes one release,
 * and an admin whose server died between commit and answer retries on a
 * peer with the same id and gets the original revision.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { Cluster, type Server } from '../support/cluster.js';
import { CuttableProxy, databaseName, dropDatabase } from '../support/mysql.js';
import { ADMIN_PASSWORD, freePort, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

// Room for the dozen statements of a write through the proxy on a loaded two-core machine (3 s was seen to run out before the COMMIT).
const WRITE_TIMEOUT_MS = 6_000;

describe('a write while the database hangs', () => {
  const procs = new Procs();
  const dir = tempDir('vitefa-definite-');
  const db = databaseName();
  const proxy = new CuttableProxy();
  let address = '';
  const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);

  before(async () => {
    await proxy.start(await freePort());
    const config = path.join(dir, 'server.json');
    fs.writeFileSync(config, JSON.stringify({ limits: { writeTimeoutMs: WRITE_TIMEOUT_MS }, pollMs: 500 }));
    const started = await startServer(proxy.url(db), ['--workers', '1', '--config', config]);
    procs.track(started.proc);
    address = started.address;
    assert.equal((await admin('env', 'add', 'o')).code, 0);
    assert.equal((await admin('set', 'o', 'k', '"before"')).code, 0);
  });
  after(async () => {
    proxy.thaw();
    await procs.killAll();
    await proxy.cut();
    await dropDatabase(db);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('frozen before the write: one line saying it was not applied, exit 1, and it is never applied after the database resumes', async () => {
    proxy.freeze();
    const refusing = admin('set', 'o', 'k', '"during"');
    // Reads and status are served from memory meanwhile (the proxy holds every byte until the thaw below).
    const read = await admin('get', 'o', 'k');
    assert.equal(read.stdout, 'before\n', read.stderr);
    assert.equal((await admin('status')).code, 0);
    const refused = await refusing;
    proxy.thaw();
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    // Answered by the server, not by the admin's own deadline: only the server names the database and says "not
    // applied" (the admin's deadline says "got no answer within", and an unknown outcome exits 3).
    assert.match(refused.stderr, /^vitefa: database mysql:\/\/\S+ (did not answer in time|is unreachable: .*); the write was not applied\n$/);
    assert.doesNotMatch(refused.stderr, /got no answer within/);
    // What the database held back was delivered at the thaw, before anything written after it: a write made now
    // commits after whatever the abandoned transaction could have, and the history read after it would show that.
    await waitFor('writes accepted again', async () => (await admin('set', 'o', 'other', '1')).code === 0, 20_000, 250);
    assert.equal((await admin('get', 'o', 'k')).stdout, 'before\n');
    const history = await admin('history', 'o', '--json');
    assert.doesNotMatch(history.stdout, /during/);
  });

  test('frozen with the COMMIT on its way: "outcome unknown" naming the revision, exit 3, and that revision is there once the database answers', async () => {
    proxy.freezeAfterCommit();
    // On a loaded machine the statements before the COMMIT can outlast the write's deadline: that is a definite "not applied"
    // (the freeze stays armed, as the COMMIT never went), and the write is tried again until its COMMIT is the one held.
    let maybe = await admin('set', 'o', 'k', '"maybe"');
    for (let tries = 1; maybe.code === 1 && tries < 5; tries += 1) {
      // Or no connection could be had in time (a new one through the frozen proxy): definite too.
      assert.match(maybe.stderr, /(did not answer in time|is unreachable: .*); the write was not applied/);
      // Another COMMIT (the audit trail's own) may have been the one held: the database is frozen for every new connection
      // too. Let it go, and hold the next COMMIT instead.
      if (proxy.isFrozen) {
        proxy.thaw();
        proxy.freezeAfterCommit();
      }
      maybe = await admin('set', 'o', 'k', '"maybe"');
    }
    assert.equal(maybe.code, 3, maybe.stderr);
    assert.equal(maybe.stderr.trim().split('\n').length, 1);
    const rev = Number(maybe.stderr.match(/did not answer the commit of o@(\d+): it may or may not have been applied; .*history o.* shows revision \1 if it was/)?.[1]);
    assert.ok(rev > 0, maybe.stderr);
    proxy.thaw();
    await waitFor(`revision ${rev} in the history`, async () => {
      const history = await admin('history', 'o', '--json');
      return history.code === 0 && history.stdout.includes(`"rev":${rev}`) && history.stdout.includes('maybe');
    }, 20_000, 250);
    await waitFor('the server serves it', async () => (await admin('get', 'o', 'k')).stdout === 'maybe\n', 20_000, 250);
  });

  test('an admin client in the same session gets the server\'s answer before its own deadline', async () => {
    const client = await AdminClient.connect({ ...parseEndpoint(address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
    try {
      proxy.freeze();
      const err = await client.request({ op: 'set', env: 'o', key: 'k', value: '"frozen"' }).then(() => undefined, (e: Error & { status?: number }) => e);
      proxy.thaw();
      assert.equal(err?.status, 300, String(err));
      assert.match(String(err?.message), /the write was not applied/);
    } finally {
      client.close();
    }
  });
});

describe('retries that apply once', () => {
  const c = new Cluster();
  const proxy = new CuttableProxy();
  let a: Server;
  let b: Server;
  const admin = (server: Server, ...args: string[]) => run(['admin', '--server', server.address, ...args]);

  before(async () => {
    await proxy.start(await freePort());
    // A reaches the database through the proxy, B directly: freezing the proxy hangs A's database alone.
    b = await c.add(['--workers', '0']);
    a = await c.add(['--workers', '0'], undefined, proxy.url(c.db));
    await c.untilNamed(a, b);
    assert.equal((await admin(b, 'env', 'add', 'o')).code, 0);
  });
  after(async () => {
    proxy.thaw();
    await proxy.cut();
    await c.close();
  });

  test('the same --request-id from two runs makes one release; the second run prints the first one\'s revision', async () => {
    const first = await admin(b, 'set', 'o', 'twice', '"1"', '--request-id', 'deploy-42');
    const second = await admin(a, 'set', 'o', 'twice', '"1"', '--request-id', 'deploy-42');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    const rev = Number(first.stdout.match(/revision (\d+)/)?.[1]);
    assert.equal(second.stdout, `o: this request id was applied before, as revision ${rev} (1 key changed); nothing was written now\n`, 'the first one\'s answer, through either server, said to be a replay');
    const history = await admin(b, 'history', 'o', 'twice', '--json');
    const { releases } = JSON.parse(history.stdout) as { releases: { rev: number }[] };
    assert.equal(releases.length, 1, history.stdout);
    assert.equal(releases[0].rev, rev);
    const bad = await admin(b, 'set', 'o', 'x', '1', '--request-id', 'not valid!');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^vitefa: --request-id must be 1 to 128 of/);
  });

  test('a server SIGKILLed after the commit, before its answer: the admin retries on a peer with the same id and gets the original revision', async () => {
    proxy.freezeAfterCommit();
    const running = admin(a, 'set', 'o', 'k', '"once"');
    await waitFor('the COMMIT reached the database', () => proxy.isFrozen, 20_000, 5);
    a.proc.child.kill('SIGKILL');
    const result = await running;
    assert.equal(result.code, 0, result.stderr);
    // Its answer lost with A, the write is sent again to B with its id: B answers with the first one's result, as a replay.
    const seen = result.stdout.match(/^o: (?:revision (\d+) \(1 key changed\)|this request id was applied before, as revision (\d+) \(1 key changed\); nothing was written now)\n$/);
    const rev = Number(seen?.[1] ?? seen?.[2]);
    assert.ok(rev > 0, result.stdout);
    const history = await admin(b, 'history', 'o', 'k', '--json');
    const { releases } = JSON.parse(history.stdout) as { releases: { rev: number }[] };
    assert.deepEqual(releases.map((r) => r.rev), [rev], 'one release, the one committed through A');
    assert.equal((await admin(b, 'get', 'o', 'k')).stdout, 'once\n');
  });
});

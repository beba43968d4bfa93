/**
 * Definite answers while the database hangs (a proxy holds every byte, as a
 * SIGSTOPped mariadbd does, without freezing the database other tests use):
 * a write the server gives up on before its COMMIT is answered "not applied"
 * and stays unapplied after the database resumes; a write whose COMMIT was
 * on its way is answered "outcome unknown" with the revision to look for,
 * exit status 3, and that revision is there once the database answers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../src/admin/client.js';
import { parseEndpoint } from '../src/transport/client.js';
import { CuttableProxy, databaseName, dropDatabase } from './support/mysql.js';
import { ADMIN_PASSWORD, freePort, Procs, run, startServer, tempDir, waitFor } from './support/procs.js';

const WRITE_TIMEOUT_MS = 3_000;

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
    const started = Date.now();
    const refused = await admin('set', 'o', 'k', '"during"');
    const took = Date.now() - started;
    proxy.thaw();
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    assert.match(refused.stderr, /^vitefa: database mysql:\/\/\S+ (did not answer in time|is unreachable: .*); the write was not applied\n$/);
    assert.ok(took < 30_000, `answered by the server, not the admin's deadline (${took} ms)`);
    // What the database held back is delivered now; the abandoned transaction is rolled back.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await waitFor('writes accepted again', async () => (await admin('set', 'o', 'other', '1')).code === 0, 20_000, 250);
    assert.equal((await admin('get', 'o', 'k')).stdout, 'before\n');
    const history = await admin('history', 'o', '--json');
    assert.doesNotMatch(history.stdout, /during/);
  });

  test('frozen with the COMMIT on its way: "outcome unknown" naming the revision, exit 3, and that revision is there once the database answers', async () => {
    proxy.freezeAfterCommit();
    const maybe = await admin('set', 'o', 'k', '"maybe"');
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

/**
 * A request beyond the admin client's queue is refused at once as a full
 * queue (E_QUEUE_FULL), not as a timeout: it was never sent, so nothing was
 * applied, and every request before it is answered.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { LocalErrorCode, VitefaError } from '../../src/protocol/index.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, Procs, startServer, tempDir } from '../support/procs.js';

const procs = new Procs();
after(() => procs.killAll());

test('the request past the admin client\'s 1,024 waiting is refused with E_QUEUE_FULL; the others are answered', async () => {
  const { proc, address } = await startServer(path.join(tempDir('vitefa-queue-'), 'store'), ['--workers', '0']);
  procs.track(proc);
  const admin = await AdminClient.connect({ ...parseEndpoint(address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000 });
  try {
    const outcomes = await Promise.all(Array.from({ length: 1025 }, () => admin.request({ op: 'env.list' }).then(
      () => 'answered',
      (err: unknown) => (err instanceof VitefaError ? err.code : String(err)),
    )));
    assert.deepEqual(outcomes.slice(0, 1024).filter((o) => o !== 'answered'), []);
    assert.equal(outcomes[1024], LocalErrorCode.QUEUE_FULL);
  } finally {
    admin.close();
  }
});

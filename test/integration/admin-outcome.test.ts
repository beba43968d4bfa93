/**
 * What the admin reports when a write's answer does not come: a request cut
 * off with its session is "connection closed before it was answered", never
 * a refusal; a write whose answer was lost is an unknown outcome naming its
 * request id, and stays unknown whatever its retry is told.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminClient } from '../../src/admin/client.js';
import { afterLoss, unanswered } from '../../src/admin/outcome.js';
import { LocalErrorCode, RemoteError, VitefaError, WireError } from '../../src/protocol/index.js';
import type { ServerSession } from '../../src/server/edge/session.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, waitFor } from '../support/common.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';

const servers: MemoryServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

test('a write in flight when the server ends its session for a reason of its own is cut off, not refused', async () => {
  const mem = await memoryServer();
  servers.push(mem);
  const client = await AdminClient.connect({ ...parseEndpoint(mem.server.address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 5000, requestTimeoutMs: 20_000 });
  await client.request({ op: 'env.add', env: 'big' });
  const entries: [string, string][] = Array.from({ length: 50_000 }, (_, i) => [`k/${i}`, String(i)]);
  const applying = client.request({ op: 'apply', env: 'big', entries, replace: false }, 'cut-off-1');
  const sessions = (mem.server.host as unknown as { sessions: Set<ServerSession> }).sessions;
  // Once the server has the request, end the session as a stalled one would be.
  const admin = await waitFor('the apply in flight on the server', () => [...sessions].find((x) => x.role === 'admin' && x.requestsInFlight > 0), 20_000, 1);
  admin.fail(WireError.SLOW_CONSUMER, 'nothing was read');
  const err = await applying.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof VitefaError && err.code === LocalErrorCode.CONNECTION_CLOSED, String(err));
  assert.match(String((err as Error).message), /^connection closed before apply was answered: server ended the session: nothing was read/);
  const reported = unanswered({ op: 'apply', env: 'big', entries: [], replace: false }, err, 'cut-off-1');
  assert.equal((reported as VitefaError).code, LocalErrorCode.OUTCOME_UNKNOWN);
  assert.match((reported as Error).message, /may or may not have been applied; `history big` shows it if it was; running it again with --request-id cut-off-1 applies it once$/);
});

test('an unknown outcome stays unknown whatever the retry is told; reads are never reported as unknown', () => {
  const set = { op: 'set', env: 'e', key: 'k', value: '1' } as const;
  const lost = new VitefaError(LocalErrorCode.CONNECTION_CLOSED, 'connection closed before set was answered: closed');
  for (const retryError of [new RemoteError(WireError.STORE_UNAVAILABLE, 'database x is unreachable; the write was not applied'), new RemoteError(WireError.SHUTTING_DOWN, 'stopping')]) {
    const final = afterLoss(set, lost, retryError, 'r-1') as VitefaError;
    assert.equal(final.code, LocalErrorCode.OUTCOME_UNKNOWN);
    assert.match(final.message, /its retry got no answer about it/);
    assert.match(final.message, /--request-id r-1/);
  }
  const unknown = unanswered(set, new RemoteError(WireError.OUTCOME_UNKNOWN, 'did not answer the commit of e@5'), 'r-2') as RemoteError;
  assert.equal(unknown.status, WireError.OUTCOME_UNKNOWN);
  assert.match(unknown.message, /e@5; running it again with --request-id r-2 applies it once$/);
  assert.equal(unanswered(set, new RemoteError(WireError.INVALID_VALUE, 'bad'), 'r-3'), undefined, 'a refusal is a refusal');
  assert.equal(unanswered({ op: 'get', env: 'e', key: 'k' }, new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, 'get got no answer'), undefined), undefined);
});

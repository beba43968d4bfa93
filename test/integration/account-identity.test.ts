/**
 * A session is bound to the account it logged in as, not to its name: on two
 * real server processes sharing one MariaDB database, an account deleted and
 * made again (as an admin) through one server leaves its old session on the
 * other server powerless, and that session ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminClient } from '../../src/admin/client.js';
import { makeVerifier } from '../../src/security/scram.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { Cluster, type Server } from '../support/cluster.js';
import { waitFor } from '../support/common.js';

describe('a session is bound to the account\'s identity', () => {
  const cluster = new Cluster();
  before(() => cluster.start(2));
  after(() => cluster.close());

  const logIn = (server: Server, user: string, secret: string): Promise<AdminClient> =>
    AdminClient.connect({ ...parseEndpoint(server.address), login: { user, secret }, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 });

  /** The role `name` has as `server` knows it now (the servers share credentials through the database's stamp, within a second). */
  async function roleOn(admin: AdminClient, name: string): Promise<string | undefined> {
    return (await admin.request({ op: 'user.list' })).users.find((u) => u.name === name)?.role;
  }

  test('tmpu (editor) logged in on B; on A, user del tmpu and user add tmpu admin at once: the old session cannot list users, and ends', async () => {
    const [a, b] = cluster.servers as [Server, Server];
    const adminA = await cluster.admin(a);
    const adminB = await cluster.admin(b);
    await adminA.request({ op: 'env.add', env: 'shop' });
    const password = 'tmpu-password';
    await adminA.request({ op: 'user.add', name: 'tmpu', role: 'editor', envs: ['shop'], verifier: makeVerifier(password, 4096) });
    await waitFor('B knows tmpu', async () => (await roleOn(adminB, 'tmpu')) === 'editor', 10_000, 100);

    const old = await logIn(b, 'tmpu', password);
    try {
      assert.equal(old.account.role, 'editor');
      await assert.rejects(old.request({ op: 'user.list' }), /needs the admin role/);

      // Both within one look at the stamp: B sees an account named tmpu before and after.
      await adminA.request({ op: 'user.del', name: 'tmpu' });
      await adminA.request({ op: 'user.add', name: 'tmpu', role: 'admin', envs: [], verifier: makeVerifier(password, 4096) });
      await waitFor('B knows the new tmpu', async () => (await roleOn(adminB, 'tmpu')) === 'admin', 10_000, 100);

      // The old session is not the new account: whatever it asks is refused, and the server ends it.
      const listed = await old.request({ op: 'user.list' }).then((r) => r.users.map((u) => u.name), (err: Error) => err);
      assert.ok(listed instanceof Error, `the old session listed the users: ${JSON.stringify(listed)}`);
      assert.match(await old.closed, /the account tmpu was deleted/);

      // The new account logs in on B and is an admin there.
      const fresh = await logIn(b, 'tmpu', password);
      try {
        assert.equal(fresh.account.role, 'admin');
        assert.ok((await fresh.request({ op: 'user.list' })).users.some((u) => u.name === 'tmpu'));
      } finally {
        fresh.close();
      }
    } finally {
      old.close();
    }
  });
});

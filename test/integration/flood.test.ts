/**
 * One address floods a port with silent connections (1,000 of them, each
 * reopened as soon as the server closes it), in a process of its own. On
 * the peer port a new server still joins the cluster; on either port an
 * admin still gets in; and the server counts what it refused, per port, in
 * `status`. Two servers share one MariaDB database.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEndpoint } from '../../src/transport/client.js';
import { Cluster, type Server } from '../support/cluster.js';
import { Flood } from '../support/flood.js';
import { waitFor } from '../support/procs.js';

/** Silent connections the flood keeps open at once. */
const FLOOD = 1000;
/** The flooder's own address: another loopback address than the servers'. */
const ATTACKER = '127.0.0.2';

describe('a flood of silent connections from one address', () => {
  const cluster = new Cluster();
  after(() => cluster.close());

  async function underFlood<T>(target: string, body: () => Promise<T>): Promise<T> {
    const flood = new Flood(parseEndpoint(target), FLOOD, ATTACKER);
    try {
      // Every connection opened, and as many reopened after the server closed them.
      await waitFor(`the flood on ${target} under way`, () => flood.opened >= 2 * FLOOD, 60_000, 100);
      return await body();
    } finally {
      await flood.stop();
    }
  }

  async function adminGetsIn(server: Server): Promise<void> {
    const admin = await cluster.admin(server);
    try {
      const answer = await admin.request({ op: 'env.list' });
      assert.ok(Array.isArray(answer.envs));
    } finally {
      admin.close();
    }
  }

  test('on the peer port: a new server joins, an admin gets in, and the peer port counts its refusals', async () => {
    const first = await cluster.add();
    await underFlood(first.peer, async () => {
      const second = await cluster.add();
      await waitFor(`${second.id} alive in the status of ${first.id}`, async () => {
        const status = await cluster.status(first);
        return status.cluster.servers.some((s) => s.id === second.id && s.state === 'alive');
      }, 60_000, 500);
      await adminGetsIn(first);
      const counters = (await cluster.status(first)).server.counters;
      assert.ok((counters['peer:LIMIT_EXCEEDED'] ?? 0) > 0, `peer-port refusals counted: ${JSON.stringify(counters)}`);
    });
  });

  test('on the client port: an admin gets in, and the client port counts its refusals', async () => {
    const first = cluster.servers[0] ?? await cluster.add();
    await underFlood(first.address, async () => {
      await adminGetsIn(first);
      const counters = (await cluster.status(first)).server.counters;
      assert.ok((counters.LIMIT_EXCEEDED ?? 0) > 0, `client-port refusals counted: ${JSON.stringify(counters)}`);
    });
  });
});

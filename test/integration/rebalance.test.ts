/**
 * A small cluster is rebalanced (real processes, real MariaDB): four agents
 * on server A, server B starts, and they end two and two, as `status` shows
 * in its AGENTS column.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../support/cluster.js';
import type { Fleet } from '../support/fleet.js';
import { run, waitFor } from '../support/procs.js';

describe('two servers and four agents', () => {
  const c = new Cluster();
  let fleet: Fleet;

  before(async () => {
    await c.start(1, () => ['--workers', '0']);
    fleet = await c.startFleet(4);
  });
  after(async () => {
    await fleet?.stop();
    await c.close();
  });

  test('all four on A; B starts; they end two on each, and status shows it', async () => {
    const [a] = c.servers;
    assert.equal(fleet.byServer().get(a.address)?.length, 4);
    const b = await c.add(['--workers', '0']);
    const spread = (): string => [a, b].map((s) => fleet.byServer().get(s.address)?.length ?? 0).join('/');
    await waitFor(`two agents on each server (now ${spread()})`, () => spread() === '2/2', 30_000, 100);
    assert.match(a.proc.output, new RegExp(`peers: moving 2 agents to ${b.id.replace(/\./g, '\\.')} \\(0 agents; this server 4, share 2\\)`));
    // status lists both servers with two agents each (the count each server gossips, or gives when asked).
    let shown = '';
    await waitFor('status with two agents on each server', async () => {
      shown = (await run(['admin', '--server', a.address, 'status'])).stdout;
      const rows = shown.split('\n').filter((l) => l.startsWith(a.id) || l.startsWith(b.id));
      return rows.length === 2 && rows.every((l) => /^\S+ +alive +\d+ +\d+ +\d+ +2 /.test(l));
    }, 30_000, 500).catch((err: Error) => assert.fail(`${err.message}; status showed:\n${shown}`));
  });
});

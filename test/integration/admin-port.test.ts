/**
 * The admin port (--admin-listen): admin sessions served by the process that
 * commits (the primary of a cluster, or the single process), with watches;
 * agents refused there with one clear reason.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import type { Release } from '../../src/protocol/index.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { readAgent } from '../support/cluster.js';
import { ADMIN_PASSWORD, agentToken, freePort, Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-admin-port-');
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

for (const workers of ['1', '0']) {
  test(`with ${workers === '0' ? 'one process' : 'cluster workers'}: admins work on the admin port, watches get releases, agents are refused there`, async () => {
    const adminAt = `127.0.0.1:${await freePort()}`;
    const { proc, address } = await startServer(path.join(dir, `server-${workers}`), ['--workers', workers, '--admin-listen', adminAt]);
    procs.track(proc);
    assert.match(proc.stdout, new RegExp(`admin port ${adminAt.replace(/\./g, '\\.')}`));
    const admin = (...args: string[]) => run(['admin', '--server', adminAt, ...args]);
    assert.equal((await admin('env', 'add', 'live')).code, 0);
    const token = await agentToken(adminAt, 'port-agent', ['live']);

    const watcher = await AdminClient.connect({ ...parseEndpoint(adminAt), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
    const seen: Release[] = [];
    watcher.onRelease = (release) => seen.push(release);
    await watcher.request({ op: 'watch', env: 'live' });

    const store = path.join(dir, `agent-${workers}`);
    procs.track(new Proc(['agent', '--servers', address, '--store', store, '--env', 'live'], { env: { VITEFA_AGENT_TOKEN: token } }));
    const set = await admin('set', 'live', 'k', '"through the admin port"');
    assert.equal(set.code, 0, set.stderr);
    await waitFor('the agent on the listen address has it', () => fs.existsSync(path.join(store, 'data.mdb')) && readAgent(store, 'live', 'k') === 'through the admin port', 20_000, 50);
    await waitFor('the watcher got the release', () => seen.some((r) => r.changes.some(([k, v]) => k === 'k' && v === '"through the admin port"')), 10_000, 20);
    assert.equal((await admin('get', 'live', 'k')).stdout, 'through the admin port\n');
    watcher.close();

    const wrong = procs.track(new Proc(['agent', '--servers', adminAt, '--store', path.join(dir, `wrong-${workers}`), '--env', 'live'], { env: { VITEFA_AGENT_TOKEN: token } }));
    await wrong.waitForOutput(/this is the admin port: agents connect to the server's listen address/, 20_000);
    await wrong.stop('SIGKILL');
    // The refusal is counted as the admin port's, apart from the client port's, and logged as such.
    const counted = await waitFor('the admin port\'s refusal in status', async () => {
      const status = await admin('--json', 'status');
      const counters = (JSON.parse(status.stdout) as { server: { counters: Record<string, number> } }).server.counters;
      return (counters['admin:UNEXPECTED_MESSAGE'] ?? 0) >= 1 ? counters : undefined;
    }, 20_000, 100);
    assert.equal(counted.UNEXPECTED_MESSAGE, undefined, JSON.stringify(counted));
    await proc.waitForOutput(/admin port: closed \S+: UNEXPECTED_MESSAGE: /, 20_000);
  });
}

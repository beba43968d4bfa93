/**
 * The admin client library against a real server: an idle session pings,
 * so the server (which closes sessions silent for idleTimeoutMs) keeps it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, Procs, startServer, tempDir, TEST_ENV } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-admin-client-');
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an idle admin session pings and is kept; one that does not is closed by the server', async () => {
  const config = path.join(dir, 'server.json');
  fs.writeFileSync(config, JSON.stringify({ limits: { idleTimeoutMs: 1500 } }));
  const { proc, address } = await startServer(path.join(dir, 'store'), ['--config', config, '--workers', '0'], TEST_ENV);
  procs.track(proc);
  const endpoint = parseEndpoint(address);
  const options = { ...endpoint, login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 5000, requestTimeoutMs: 5000 };
  const pinging = await AdminClient.connect({ ...options, pingIntervalMs: 300 });
  const silent = await AdminClient.connect({ ...options, pingIntervalMs: 60_000 });
  try {
    const reason = await Promise.race([silent.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 6000))]);
    assert.match(reason, /nothing received for 1500 ms/);
    const result = await pinging.request({ op: 'env.list' });
    assert.ok(Array.isArray(result.envs), 'the pinging session still answers after three times the idle timeout');
  } finally {
    pinging.close();
    silent.close();
  }
});

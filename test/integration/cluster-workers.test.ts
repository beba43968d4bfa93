/**
 * Workers that die: a killed worker is replaced and its agents come back and
 * catch up; a worker that keeps dying young is replaced after a delay that
 * grows, instead of being re-forked in a tight loop. The refusals the
 * workers count are in the server's row of `status` and of `status.local`.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { WireError } from '../../src/protocol/index.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, agentToken, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';
import { RawClient } from '../support/raw-agents.js';

const procs = new Procs();
const dir = tempDir('vitefa-workers-');
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const workersOf = (pid: number): number[] =>
  execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);

async function counters(address: string): Promise<Record<string, number> & { workers: number }> {
  const result = await run(['admin', '--server', address, '--json', 'status']);
  assert.equal(result.code, 0, result.stderr);
  const status = JSON.parse(result.stdout) as { server: { counters: Record<string, number>; workers: number } };
  return { ...status.server.counters, workers: status.server.workers };
}

test('a killed worker is replaced, counted, and its agents come back current; one that keeps dying is replaced ever more slowly', async () => {
  const { proc, address } = await startServer(path.join(dir, 'store'), ['--workers', '2', '--max-agents', '200']);
  procs.track(proc);
  assert.equal((await run(['admin', '--server', address, 'env', 'add', 'w'])).code, 0);
  const token = await agentToken(address, 'workers-agents');
  const [host, port] = address.split(':');
  // Agents that reconnect by themselves, as real agents do.
  const target = { host: host, port: Number(port) };
  const agents: RawClient[] = [];
  let done = false;
  const connect = async (i: number): Promise<void> => {
    const agent = new RawClient(target);
    agents[i] = agent;
    if (await agent.greeted()) agent.follow('w', token, `a${i}`);
    void agent.closedAt.then(() => done || setTimeout(() => void connect(i), 100));
  };
  for (let i = 0; i < 40; i++) await connect(i);
  await waitFor('every agent following', () => agents.every((a) => a.held > 0));

  const [first] = workersOf(proc.child.pid!);
  process.kill(first, 'SIGKILL');
  await proc.waitForOutput(new RegExp(`worker ${first} exited \\(SIGKILL\\)`));
  await waitFor('two workers again', async () => (await counters(address)).workers === 2, 15_000, 200);
  const set = await run(['admin', '--server', address, '--json', 'set', 'w', 'k', '1']);
  const { rev } = JSON.parse(set.stdout) as { rev: number };
  await waitFor('every agent current again', () => agents.every((a) => a.held >= rev), 15_000);
  assert.equal((await counters(address)).workerRestarts, 1);

  // Now kill each replacement as soon as it is up: the delay before the next one grows.
  for (let round = 0; round < 3; round++) {
    const before = workersOf(proc.child.pid!);
    const victim = before[before.length - 1];
    process.kill(victim, 'SIGKILL');
    await proc.waitForOutput(new RegExp(`worker ${victim} exited`), 10_000);
    await waitFor('a replacement', () => workersOf(proc.child.pid!).length === 2 && !workersOf(proc.child.pid!).includes(victim), 20_000, 50);
  }
  const delays = [...proc.stderr.matchAll(/starting another worker in (\d+) ms/g)].map((m) => Number(m[1]));
  assert.ok(delays.length >= 3, `delays logged: ${proc.stderr}`);
  assert.ok(delays[delays.length - 1] > delays[0], `the delay grows: ${delays.join(', ')}`);
  assert.ok((await counters(address)).workerRestarts >= 4);
  done = true;
  for (const a of agents) a.close();
});

test('status.local carries the refusals counted by the workers, as status does', async () => {
  const { proc, address } = await startServer(path.join(dir, 'local-store'), ['--workers', '1']);
  procs.track(proc);
  // A declared frame length of 4 GB: refused as FRAME_TOO_LARGE by the worker that holds the connection.
  const attacker = new RawClient(parseEndpoint(address));
  assert.ok(await attacker.greeted());
  attacker.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  await attacker.closedAt;
  assert.ok(attacker.errors.some((e) => e.code === WireError.FRAME_TOO_LARGE), JSON.stringify(attacker.errors));

  const admin = await AdminClient.connect({ ...parseEndpoint(address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
  try {
    const status = await admin.request({ op: 'status' });
    const local = await admin.request({ op: 'status.local' });
    assert.equal(status.server.counters.FRAME_TOO_LARGE, 1, JSON.stringify(status.server.counters));
    assert.deepEqual(local.server.counters, status.server.counters);
    assert.equal(local.server.workers, status.server.workers);
  } finally {
    admin.close();
  }
});

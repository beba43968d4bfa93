/**
 * At the limits, real processes: a server whose workers are full of agents
 * refuses the next agents cleanly and still lets an admin in (the primary
 * keeps one worker listening), serves refused agents once room frees, and a
 * single process does the same; connections that have not said hello are
 * bounded per source address and in all.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MessageType, WireError } from '../../src/protocol/index.js';
import { agentToken, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';
import { RawClient } from '../support/raw-agents.js';

const procs = new Procs();
const dir = tempDir('vitefa-capacity-');
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

function endpoint(address: string): { host: string; port: number } {
  const [host, port] = address.split(':');
  return { host: host, port: Number(port) };
}

/** Connects `n` agents following `env`; resolves when each follows or was refused. */
async function agents(address: string, n: number, env: string, token: string): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let i = 0; i < n; i++) {
    const agent = new RawClient(endpoint(address), '127.0.0.2');
    out.push(agent);
    if (await agent.greeted()) agent.follow(env, token, `agent-${i}`);
  }
  await waitFor('every agent following or refused', () => out.every((a) => a.held > 0 || a.closed), 15_000);
  return out;
}

const refusedFull = (a: RawClient): boolean => a.errors.some((e) => e.code === WireError.SERVER_FULL);

async function status(address: string): Promise<{ agentsTotal: number; server: { counters: Record<string, number> } }> {
  const result = await run(['admin', '--server', address, '--json', 'status']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as { agentsTotal: number; server: { counters: Record<string, number> } };
}

test('a cluster whose workers are full of agents refuses the next ones with SERVER_FULL, still lets an admin in, and serves agents again once room frees', async () => {
  // 2 workers of ceil(20 / 2 * 1.25) = 13 agents each.
  const { proc, address } = await startServer(path.join(dir, 'cluster'), ['--max-agents', '20', '--workers', '2']);
  procs.track(proc);
  assert.equal((await run(['admin', '--server', address, 'env', 'add', 'cap'])).code, 0);
  const token = await agentToken(address, 'cap-agents');
  const fleet = await agents(address, 40, 'cap', token);
  const following = fleet.filter((a) => a.held > 0);
  assert.equal(following.length, 26, 'both workers filled to their limit');
  assert.equal(fleet.filter(refusedFull).length, 14, 'the rest refused with SERVER_FULL');
  // Both workers are full: an admin still gets in, every time.
  for (let i = 0; i < 5; i++) {
    const s = await status(address);
    assert.equal(s.agentsTotal, 26);
    assert.ok((s.server.counters.SERVER_FULL ?? 0) >= 14);
  }
  // Room frees: refused agents that come back are served.
  for (const a of following.slice(0, 10)) a.close();
  const back: RawClient[] = [];
  for (let i = 0; i < 5; i++) {
    await waitFor(`returning agent ${i} served`, async () => {
      const agent = new RawClient(endpoint(address), '127.0.0.2');
      if (await agent.greeted()) agent.follow('cap', token, `back-${i}`);
      await waitFor('followed or refused', () => agent.held > 0 || agent.closed, 5000);
      if (agent.held > 0) back.push(agent);
      return agent.held > 0;
    }, 15_000, 200);
  }
  assert.equal(back.length, 5);
  assert.equal((await status(address)).agentsTotal, 21);
  for (const a of [...fleet, ...back]) a.close();
});

test('a single process full of agents refuses the next ones and still lets an admin in', async () => {
  const { proc, address } = await startServer(path.join(dir, 'single'), ['--max-agents', '10', '--workers', '0']);
  procs.track(proc);
  assert.equal((await run(['admin', '--server', address, 'env', 'add', 'cap'])).code, 0);
  const fleet = await agents(address, 15, 'cap', await agentToken(address, 'cap-agents'));
  assert.equal(fleet.filter((a) => a.held > 0).length, 10);
  assert.equal(fleet.filter(refusedFull).length, 5);
  const s = await status(address);
  assert.equal(s.agentsTotal, 10);
  assert.equal(s.server.counters.SERVER_FULL, 5);
  for (const a of fleet) a.close();
});

test('connections that have not said hello are bounded per source address and in all', async () => {
  const config = path.join(dir, 'pending.json');
  fs.writeFileSync(config, JSON.stringify({ limits: { pendingHellosPerAddress: 20, pendingHellos: 50, helloTimeoutMs: 60_000 } }));
  const { proc, address } = await startServer(path.join(dir, 'pending'), ['--workers', '0', '--config', config]);
  procs.track(proc);
  const silent = (from: string, n: number): RawClient[] => Array.from({ length: n }, () => new RawClient(endpoint(address), from));
  const first = silent('127.0.0.5', 30);
  await waitFor('each greeted or refused', () => first.every((c) => c.received.length > 0 || c.closed));
  const refused = first.filter((c) => c.errors.some((e) => e.code === WireError.LIMIT_EXCEEDED));
  assert.equal(refused.length, 10, 'beyond 20 from one address');
  for (const c of refused) {
    assert.equal(c.received[0].t, MessageType.Error, 'refused before any hello');
    assert.match(c.errors[0].msg, /20 connections from 127\.0\.0\.5 have not said hello yet/);
  }
  await waitFor('refused ones closed', () => refused.every((c) => c.closed));
  // Another address is not held up by the first.
  const other = silent('127.0.0.6', 20);
  await waitFor('greeted', () => other.every((c) => c.received.some((m) => m.t === MessageType.Hello)));
  // In all: 40 pending now; of 20 more from a third address only 10 fit.
  const third = silent('127.0.0.7', 20);
  await waitFor('each greeted or refused', () => third.every((c) => c.received.length > 0 || c.closed));
  assert.equal(third.filter((c) => c.errors.some((e) => /50 connections to this server process have not said hello yet/.test(e.msg))).length, 10);
  // Once they go, room comes back, and an admin gets in.
  for (const c of [...first, ...other, ...third]) c.close();
  await waitFor('an admin gets in', async () => (await run(['admin', '--server', address, 'env', 'list'])).code === 0, 10_000, 100);
  assert.ok(((await status(address)).server.counters.LIMIT_EXCEEDED ?? 0) >= 20);
});

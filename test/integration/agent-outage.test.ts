/**
 * An agent that reaches no server says so: the rule (first line after 5 s
 * without a session, then at most one a minute, one line when it is back)
 * with an injected clock, and a real `vitefa agent` process whose server
 * is gone, whatever VITEFA_TRACE says.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Outage, OUTAGE_DEFAULTS, OUTAGE_NAMED } from '../../src/agent/outage.js';
import { unreachableLine } from '../../src/agent/main.js';
import { agentToken, freePort, Proc, Procs, tempDir } from '../support/procs.js';

const procs = new Procs();
const dirs: string[] = [];
after(async () => {
  await procs.killAll();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function clocked(): { outage: Outage; advance: (ms: number) => void } {
  let now = 1_000_000;
  return { outage: new Outage(OUTAGE_DEFAULTS, () => now), advance: (ms) => void (now += ms) };
}

test('the first report comes 5 s into an outage, naming every address tried and the last error', () => {
  const { outage, advance } = clocked();
  assert.equal(outage.nextInMs(), undefined, 'no outage, nothing to wait for');
  outage.begin();
  outage.trying('10.0.0.1:7400');
  outage.failed('connect ECONNREFUSED 10.0.0.1:7400');
  advance(2_000);
  outage.trying('10.0.0.2:7400');
  outage.failed('no hello from 10.0.0.2:7400 within 5000 ms');
  outage.trying('10.0.0.1:7400');
  outage.failed('connect ECONNREFUSED 10.0.0.1:7400');
  advance(2_999);
  assert.equal(outage.due(), undefined);
  assert.equal(outage.nextInMs(), 1);
  advance(1);
  const report = outage.due();
  assert.deepEqual(report, { forMs: 5_000, tried: ['10.0.0.1:7400', '10.0.0.2:7400'], more: 0, lastError: 'connect ECONNREFUSED 10.0.0.1:7400' });
  assert.equal(outage.due(), undefined, 'said once');
  assert.equal(
    unreachableLine(report),
    'agent reached no server for 5 s: tried 10.0.0.1:7400, 10.0.0.2:7400; last error: connect ECONNREFUSED 10.0.0.1:7400',
  );
});

test('then at most one report a minute, and one word when a session is up again', () => {
  const { outage, advance } = clocked();
  outage.begin();
  outage.trying('a:1');
  outage.failed('refused');
  advance(5_000);
  assert.ok(outage.due());
  assert.equal(outage.nextInMs(), 60_000);
  advance(59_999);
  assert.equal(outage.due(), undefined);
  advance(1);
  assert.equal(outage.due()?.forMs, 65_000);
  advance(10_000);
  assert.equal(outage.end(), 75_000, 'back after a reported outage: its length, for the line');
  assert.equal(outage.nextInMs(), undefined);
  assert.equal(outage.end(), undefined, 'one line when back, not two');
});

test('a short outage says nothing, and a new outage soon after a report waits for the minute', () => {
  const { outage, advance } = clocked();
  outage.begin();
  outage.trying('a:1');
  advance(4_000);
  assert.equal(outage.due(), undefined);
  assert.equal(outage.end(), undefined, 'a quick failover is not reported, nor its end');

  outage.begin();
  advance(5_000);
  assert.ok(outage.due(), 'reported');
  outage.end();
  advance(1_000);
  // A server that keeps dropping its agents: every new outage waits for a minute after the last report.
  outage.begin();
  advance(5_000);
  assert.equal(outage.due(), undefined);
  assert.equal(outage.nextInMs(), 54_000);
  advance(54_000);
  const report = outage.due();
  assert.equal(report?.forMs, 59_000);
  assert.deepEqual(report?.tried, [], 'a new outage names only what it tried itself');
  assert.equal(report?.lastError, undefined);
  assert.match(unreachableLine(report), /; no answer yet$/);
});

test('begin() during an outage keeps its start; the addresses named are bounded, the rest counted', () => {
  const { outage, advance } = clocked();
  outage.begin();
  advance(3_000);
  outage.begin();
  for (let i = 0; i < OUTAGE_NAMED + 5; i++) outage.trying(`10.0.0.${i}:7400`);
  outage.trying('10.0.0.0:7400');
  advance(2_000);
  const report = outage.due()!;
  assert.equal(report.forMs, 5_000);
  assert.equal(report.tried.length, OUTAGE_NAMED);
  assert.equal(report.more, 5);
  assert.match(unreachableLine(report), /10\.0\.0\.15:7400 and 5 more; no answer yet$/);
});

test('`vitefa agent` whose server is gone says so without tracing, and says when it is back', async () => {
  const dir = tempDir('vitefa-outage-');
  dirs.push(dir);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const serverArgs = ['server', '--listen', address, '--store', path.join(dir, 'server'), '--max-agents', '2000'];
  // A server on that port once, for a token; then it is stopped, and the port is closed.
  const first = procs.track(new Proc(serverArgs));
  await first.waitForOutput(/listening on/);
  const token = await agentToken(address, 'outage-agent');
  await first.stop();

  const agent = procs.track(new Proc(['agent', '--servers', address, '--store', path.join(dir, 'agent')], { env: { VITEFA_TRACE: '', VITEFA_AGENT_TOKEN: token } }));
  const [line, seconds] = await agent.waitForOutput(/agent reached no server for (\d+) s: [^\n]*\n/);
  assert.ok(Number(seconds) >= 5, line);
  assert.ok(line.includes(`tried ${address}; last error: `), line);
  assert.match(line, /ECONNREFUSED/, 'the last error is named');
  assert.doesNotMatch(agent.stderr, /agent: connect to/, 'no tracing');

  const again = procs.track(new Proc(serverArgs));
  await again.waitForOutput(/listening on/);
  const [back, after] = await agent.waitForOutput(/agent connected to 127\.0\.0\.1:\d+ after (\d+) s without a server\n/);
  assert.ok(back.includes(address), back);
  assert.ok(Number(after) >= Number(seconds), back);
});

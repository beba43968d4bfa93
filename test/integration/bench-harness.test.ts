import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, ROOT, tempDir } from '../support/procs.js';

const dir = tempDir('vitefa-bench-test-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * The propagation harness at a small size: a real server (cluster), a bare
 * fan-out floor, a few hundred simulated agents speaking the protocol, a
 * burst, a snapshot joining, and a reconnect storm after SIGKILL. Timings are
 * reported, never asserted; delivery is: every agent gets every release, and
 * none is lost across the restart.
 */
/** Runs a harness (its script and arguments) to its end; its output, after it exited 0. */
async function runBench(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, output);
  return output;
}

test('the harness: every agent receives every release, none lost in a reconnect storm', async () => {
  const json = path.join(dir, 'bench.json');
  const port = await freePort('127.0.0.2');
  const output = await runBench(['bench/run.ts', '--agents', '300', '--rounds', '2', '--releases', '40', '--snapshot-keys', '2000', '--port', String(port), '--json', json, '--timeout', '240']);
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as {
    layout: { agents: number };
    propagation: { rounds: { received: number }[]; floorRounds: { received: number }[]; ratioP99: number };
    storm: { lostReleases: number };
    agentsSaw: { gaps: number; protocolErrors: number };
    snapshot: { joinersCurrentMs: number };
  };
  assert.equal(report.layout.agents, 300);
  for (const round of report.propagation.rounds) assert.equal(round.received, 300, 'every agent got every release');
  for (const round of report.propagation.floorRounds) assert.equal(round.received, 300, 'every floor socket got every frame');
  assert.equal(report.storm.lostReleases, 0);
  assert.equal(report.agentsSaw.gaps, 0);
  assert.equal(report.agentsSaw.protocolErrors, 0);
  assert.ok(report.snapshot.joinersCurrentMs > 0);
  assert.ok(Number.isFinite(report.propagation.ratioP99), 'the floor ran in the same run');
  assert.ok(fs.existsSync(path.join(dir, 'bench.svg')), 'the latency plot was written');
  assert.match(output, /propagation p99 \(ms\)/);
});

/**
 * The layered harness at a small size: writes to an environment standing
 * alone and to a layer with 100 dependents, reaching every agent; a bulk
 * apply of each kind; the heap per environment. Its figures are printed,
 * never asserted.
 */
test('the layered harness: every agent receives every write of both kinds, and every figure is printed', async () => {
  const json = path.join(dir, 'layers.json');
  const port = await freePort('127.0.0.2');
  const output = await runBench(['bench/layers.ts', '--agents', '200', '--rounds', '1', '--bulk-keys', '300', '--bulk-rounds', '1', '--memory-envs', '20', '--memory-keys', '20', '--port', String(port), '--json', json, '--timeout', '240']);
  const report = JSON.parse(fs.readFileSync(json, 'utf8')) as {
    layout: { agents: number; dependents: number; populations: string };
    propagation: { rounds: { kind: string; received: number }[]; ratioP99: number };
    commitMs: { ratio: number };
    bulk: { aloneMs: number[]; layeredMs: number[] };
    memory: { layeringDeltaBytesPerEnv: number };
    agentsSaw: { gaps: number; errors: number };
  };
  assert.equal(report.layout.agents, 200);
  assert.equal(report.layout.dependents, 100);
  assert.deepEqual(report.propagation.rounds.map((r) => [r.kind, r.received]), [['plain', 200], ['layered', 200]], 'every agent got every write');
  assert.deepEqual(report.agentsSaw, { gaps: 0, errors: 0 });
  assert.ok(Number.isFinite(report.propagation.ratioP99) && Number.isFinite(report.commitMs.ratio));
  assert.equal(report.bulk.aloneMs.length, 1);
  assert.equal(report.bulk.layeredMs.length, 1);
  assert.ok(Number.isFinite(report.memory.layeringDeltaBytesPerEnv));
  for (const figure of [/commit, median of rounds \(ms\)/, /propagation p99 \(ms\)/, /apply of 300 keys, commit median/, /server heap per environment of 20 keys \(bytes\)/, /layering's delta per environment/, /populations: two fleets/]) {
    assert.match(output, figure);
  }
});

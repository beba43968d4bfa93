import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BENCH_ENV, expectedBenchNames, fillReaderStore, formatTable, runMicro, verifyReader, type MicroResult,
} from '../../bench/micro.js';
import { ConfigReader } from '../../src/reader/index.js';

// Never assert timings here: only that every benchmark ran and produced a usable number.

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

test('quick micro run reports every benchmark with a finite positive rate', async () => {
  const results: MicroResult[] = await runMicro({ quick: true });
  const names = results.map((r) => r.name);
  assert.deepEqual(names, expectedBenchNames());
  assert.equal(new Set(names).size, names.length, 'benchmark names are unique');
  for (const r of results) {
    assert.ok(Number.isFinite(r.opsPerSec) && r.opsPerSec > 0, `${r.name}: opsPerSec ${r.opsPerSec}`);
    assert.ok(Number.isFinite(r.usPerOp) && r.usPerOp > 0, `${r.name}: usPerOp ${r.usPerOp}`);
    assert.ok(Number.isFinite(r.rme) && r.rme >= 0, `${r.name}: rme ${r.rme}`);
    assert.ok(Number.isInteger(r.samples) && r.samples > 0, `${r.name}: samples ${r.samples}`);
  }
  for (const r of results.filter((x) => x.name.startsWith('agent apply'))) {
    assert.match(r.name, /fsync/, 'apply benchmarks say their commit is durable');
  }
  const table = formatTable(results);
  for (const name of names) assert.ok(table.includes(name));
});

test('the reader fixture reads back what was stored, and the check catches a wrong value', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-micro-test-'));
  dirs.push(dir);
  const { entries, rev, store } = fillReaderStore(dir, 100, 7);
  const reader = ConfigReader.open(dir);
  try {
    const [key, json] = entries[37];
    assert.deepEqual(reader.get(BENCH_ENV, key), JSON.parse(json));
    assert.equal(reader.getText(BENCH_ENV, key), json);
    assert.equal(reader.revision(BENCH_ENV), rev);
    assert.doesNotThrow(() => verifyReader(reader, BENCH_ENV, entries, rev));
    const tampered = entries.map(([k, v], i) => [k, i === 5 ? '{"other":true}' : v] as [string, string]);
    assert.throws(() => verifyReader(reader, BENCH_ENV, tampered, rev), /returned/);
    assert.throws(() => verifyReader(reader, BENCH_ENV, entries, rev + 1), /revision/);
  } finally {
    await reader.close();
    await store.close();
  }
});

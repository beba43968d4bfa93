/**
 * Micro-benchmarks of the hot paths, with the `benchmark` package:
 *   - frame encode / decode of Release messages (encodeMessage; FrameDecoder.push + decodeBody);
 *   - agent apply: LocalStore.applyRelease of 1, 100 and 10,000 keys into a fresh LMDB store,
 *     a NEW release (next revision) on every iteration; each apply is one synchronous LMDB
 *     write transaction whose commit is durable (fsync), plus the notify-file rewrite;
 *   - reader: ConfigReader.get / getText / revision on a store holding 10,000 keys.
 *
 * Run: node --import tsx bench/micro.ts [--json FILE] [--quick]
 *
 * lmdb-js renews its shared read transaction from a setTimeout(0) timer, so the
 * synchronous loop inside one Benchmark cycle reuses one snapshot (the hot-reader
 * case); cycles run asynchronously (`async: true`), letting the timer reset the
 * snapshot between cycles, as it would between event-loop turns of a real process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';
import Benchmark from 'benchmark';
import { LocalStore } from '../src/agent/local-store.js';
import {
  decodeBody, encodeMessage, FrameDecoder, MessageType,
  type Change, type Entry, type Message, type Release,
} from '../src/protocol/index.js';
import { ConfigReader } from '../src/reader/index.js';

export interface MicroResult {
  name: string;
  opsPerSec: number;
  usPerOp: number;
  /** Relative margin of error, in percent. */
  rme: number;
  samples: number;
  /** What exactly one operation includes, when the name alone does not say. */
  note?: string;
}

export interface MicroOptions {
  /** Short runs (a few hundredths of a second per benchmark), for tests and smoke checks. */
  quick?: boolean;
}

/** Environment every benchmark uses. */
export const BENCH_ENV = 'prod';
/** Keys in the store the reader benchmarks read from. */
export const READER_KEYS = 10_000;
/** Release sizes (keys changed) of the agent apply benchmarks. */
export const APPLY_SIZES = [1, 100, 10_000] as const;

const APPLY_NOTE =
  'one LocalStore.applyRelease = one synchronous LMDB write transaction with a durable commit (fsync) + notify-file rewrite; '
  + 'every iteration applies the next revision (prev = previous rev) and changes the value of every key in the release';

export const BENCH_NAMES = {
  encode1: 'frame encode: Release, 1 change (~100 B JSON)',
  encode100: 'frame encode: Release, 100 changes',
  decode1: 'frame decode: Release, 1 change (push + decodeBody)',
  decode100: 'frame decode: Release, 100 changes (push + decodeBody)',
  apply: (keys: number): string => `agent apply: Release of ${keys} key${keys === 1 ? '' : 's'} (1 sync txn, fsync commit)`,
  get: `reader get: ${READER_KEYS} keys, cycling`,
  getText: `reader getText: ${READER_KEYS} keys, cycling`,
  revision: 'reader revision',
} as const;

/** Every benchmark name runMicro reports, in order. */
export function expectedBenchNames(): string[] {
  return [
    BENCH_NAMES.encode1, BENCH_NAMES.encode100, BENCH_NAMES.decode1, BENCH_NAMES.decode100,
    ...APPLY_SIZES.map((n) => BENCH_NAMES.apply(n)),
    BENCH_NAMES.get, BENCH_NAMES.getText, BENCH_NAMES.revision,
  ];
}

// ---------------------------------------------------------------------------
// Fixtures

/** A JSON text of about 100 bytes, typical of one configuration value. */
const VALUE_100B = JSON.stringify({
  host: 'db-primary.payments.prod.internal', port: 5432, pool: { min: 4, max: 32 }, timeoutMs: 1500, ssl: true,
});

function keyName(i: number): string {
  return `svc/feature-${String(i).padStart(5, '0')}`;
}

/** A JSON text of about 50 bytes; `variant` changes the value so consecutive releases really differ. */
function value50(i: number, variant: number): string {
  return JSON.stringify({ id: i, on: variant % 2 === 0, limit: 1000 + variant, tag: 'abcdefgh' });
}

function release(rev: number, changes: Change[]): Release {
  return {
    t: MessageType.Release, env: BENCH_ENV, rev, prev: rev - 1, time: 1_760_000_000_000 + rev,
    author: 'alice@example.com', op: 'apply', changes,
  };
}

function releaseOf(changes: number, valueOf: (i: number) => string): Release {
  return release(1234, Array.from({ length: changes }, (_, i): Change => [keyName(i), valueOf(i)]));
}

/** Throws unless `reader` returns every entry exactly as stored (text and parsed value). */
export function verifyReader(reader: ConfigReader, env: string, entries: readonly Entry[], rev: number): void {
  for (const [key, json] of entries) {
    const text = reader.getText(env, key);
    if (text !== json) throw new Error(`reader getText(${env}, ${key}) returned ${String(text)}, stored ${json}`);
    const value = reader.get(env, key);
    if (!isDeepStrictEqual(value, JSON.parse(json))) {
      throw new Error(`reader get(${env}, ${key}) returned ${JSON.stringify(value)}, stored ${json}`);
    }
  }
  const held = reader.revision(env);
  if (held !== rev) throw new Error(`reader revision(${env}) returned ${held}, stored ${rev}`);
}

/**
 * Writes `keys` entries of ~50 B into a new store at `dir` (one snapshot) and returns
 * them with the still-open writer (close it when done).
 */
export function fillReaderStore(dir: string, keys: number, rev = 42): { entries: Entry[]; rev: number; store: LocalStore } {
  const entries = Array.from({ length: keys }, (_, i): Entry => [keyName(i), value50(i, 0)]);
  const store = LocalStore.open(dir, { mapSize: 256 * 1024 * 1024 });
  store.applySnapshot({ t: MessageType.Snapshot, env: BENCH_ENV, rev, entries });
  return { entries, rev, store };
}

// ---------------------------------------------------------------------------
// Running

interface Case {
  name: string;
  fn: () => void;
  note?: string;
  /** Checked after the benchmark ran (e.g. the store holds the last revision). */
  after?: () => void;
}

/** Result of each timed call, kept so the work cannot be optimised away. */
let sink: unknown;

function drainSink(): unknown {
  const last = sink;
  sink = undefined;
  return last;
}

function benchOptions(quick: boolean): Benchmark.Options {
  return quick
    ? { maxTime: 0.05, minSamples: 3, minTime: 0.01, delay: 0 }
    : { maxTime: 2, minSamples: 10 };
}

function runCases(cases: Case[], options: Benchmark.Options): Promise<MicroResult[]> {
  return new Promise((resolve, reject) => {
    const suite = new Benchmark.Suite('micro');
    for (const c of cases) suite.add(c.name, c.fn, options);
    suite.on('complete', () => {
      const results: MicroResult[] = [];
      const benches = suite.map((b: Benchmark) => b) as Benchmark[];
      for (let i = 0; i < benches.length; i++) {
        const b = benches[i];
        const c = cases[i];
        if (b.error !== undefined) {
          reject(new Error(`benchmark "${c.name}" failed: ${String(b.error)}`, { cause: b.error }));
          return;
        }
        try {
          c.after?.();
        } catch (err) {
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what the case's `after` threw is passed on unchanged
          reject(err);
          return;
        }
        results.push({
          name: c.name,
          opsPerSec: b.hz,
          usPerOp: b.stats.mean * 1e6,
          rme: b.stats.rme,
          samples: b.stats.sample.length,
          ...(c.note === undefined ? {} : { note: c.note }),
        });
      }
      resolve(results);
    });
    suite.run({ async: true });
  });
}

function frameCases(): Case[] {
  const small = releaseOf(1, () => VALUE_100B);
  const large = releaseOf(100, (i) => value50(i, 0));
  const smallFrame = encodeMessage(small);
  const largeFrame = encodeMessage(large);
  const decoder = new FrameDecoder();
  const decodeOne = (frame: Buffer): Message => {
    const bodies = decoder.push(frame);
    if (bodies.length !== 1) throw new Error(`expected one frame body, got ${bodies.length}`);
    return decodeBody(bodies[0]);
  };
  // Correctness before timing: both frames decode to the release they encode.
  for (const [msg, frame] of [[small, smallFrame], [large, largeFrame]] as const) {
    if (!isDeepStrictEqual(decodeOne(frame), msg)) throw new Error('frame decode does not round-trip the release');
  }
  return [
    { name: BENCH_NAMES.encode1, fn: () => { sink = encodeMessage(small); }, note: `frame of ${smallFrame.length} B` },
    { name: BENCH_NAMES.encode100, fn: () => { sink = encodeMessage(large); }, note: `frame of ${largeFrame.length} B` },
    { name: BENCH_NAMES.decode1, fn: () => { sink = decodeOne(smallFrame); }, note: `frame of ${smallFrame.length} B` },
    { name: BENCH_NAMES.decode100, fn: () => { sink = decodeOne(largeFrame); }, note: `frame of ${largeFrame.length} B` },
  ];
}

function applyCases(root: string, stores: LocalStore[]): Case[] {
  return APPLY_SIZES.map((size): Case => {
    const store = LocalStore.open(path.join(root, `apply-${size}`), { mapSize: 1024 * 1024 * 1024 });
    stores.push(store);
    // Two value sets, alternated by revision: each release changes every key it carries.
    const sets = [0, 1].map((variant) =>
      Array.from({ length: size }, (_, i): Change => [keyName(i), value50(i, variant)]));
    let rev = 0;
    const apply = (): void => {
      rev += 1;
      store.applyRelease(release(rev, sets[rev & 1]));
    };
    apply(); // the first release inserts the keys; timed releases update them
    return {
      name: BENCH_NAMES.apply(size),
      fn: apply,
      note: APPLY_NOTE,
      after: () => {
        const held = store.revision(BENCH_ENV);
        if (held !== rev) throw new Error(`agent store holds revision ${held} after applying ${rev}`);
      },
    };
  });
}

function readerCases(root: string, stores: LocalStore[], readers: ConfigReader[]): Case[] {
  const dir = path.join(root, 'reader');
  const { entries, rev, store } = fillReaderStore(dir, READER_KEYS);
  stores.push(store);
  const reader = ConfigReader.open(dir);
  readers.push(reader);
  // Correctness before timing: every key reads back exactly as stored.
  verifyReader(reader, BENCH_ENV, entries, rev);
  const keys = entries.map(([k]) => k);
  const n = keys.length;
  let i = 0;
  let j = 0;
  return [
    {
      name: BENCH_NAMES.get,
      fn: () => { sink = reader.get(BENCH_ENV, keys[i]); if (++i === n) i = 0; },
      note: 'valueKey + getBinaryFast + utf8 decode + JSON.parse of ~50 B',
    },
    {
      name: BENCH_NAMES.getText,
      fn: () => { sink = reader.getText(BENCH_ENV, keys[j]); if (++j === n) j = 0; },
      note: 'valueKey + getBinaryFast + utf8 decode',
    },
    { name: BENCH_NAMES.revision, fn: () => { sink = reader.revision(BENCH_ENV); } },
  ];
}

export async function runMicro(options: MicroOptions = {}): Promise<MicroResult[]> {
  const quick = options.quick === true;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-micro-'));
  const stores: LocalStore[] = [];
  const readers: ConfigReader[] = [];
  try {
    const cases = [...frameCases(), ...applyCases(root, stores), ...readerCases(root, stores, readers)];
    const results = await runCases(cases, benchOptions(quick));
    drainSink();
    return results;
  } finally {
    for (const r of readers) await r.close();
    for (const s of stores) await s.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Command line

export function formatTable(results: readonly MicroResult[]): string {
  const rows = results.map((r) => [
    r.name,
    r.usPerOp < 10 ? r.usPerOp.toFixed(3) : r.usPerOp < 1000 ? r.usPerOp.toFixed(1) : r.usPerOp.toFixed(0),
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    `±${r.rme.toFixed(2)}%`,
    String(r.samples),
  ]);
  const head = ['benchmark', 'µs/op', 'ops/s', 'rme', 'samples'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]): string =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(argv: string[]): Promise<void> {
  let jsonFile: string | undefined;
  let quick = false;
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k];
    if (arg === '--quick') quick = true;
    else if (arg === '--json') {
      jsonFile = argv[++k];
      if (jsonFile === undefined) throw new Error('--json needs a file name');
    } else if (arg.startsWith('--json=')) jsonFile = arg.slice('--json='.length);
    else throw new Error(`unknown argument ${arg} (usage: micro.ts [--json FILE] [--quick])`);
  }
  const started = Date.now();
  const results = await runMicro({ quick });
  console.log(formatTable(results));
  console.log(`\n${quick ? 'quick' : 'full'} run in ${((Date.now() - started) / 1000).toFixed(1)} s; node ${process.version}; store in ${os.tmpdir()}`);
  console.log(`agent apply: ${APPLY_NOTE}`);
  if (jsonFile !== undefined) {
    const report = {
      suite: 'micro', quick, node: process.version, platform: `${process.platform}-${process.arch}`,
      cpus: os.cpus().length, cpu: os.cpus()[0]?.model, tmpdir: os.tmpdir(), date: new Date().toISOString(), results,
    };
    fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${jsonFile}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

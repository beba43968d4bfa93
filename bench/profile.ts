/**
 * Where the time goes: `npm run bench:profile -- DIR [--top N]` summarises the
 * CPU profiles `npm run bench -- --profile DIR …` wrote, per phase of the run
 * (connect, idle, each round, the burst, …) and per kind of process (the
 * server's primary, its workers, the load generators): time sampled outside
 * the event loop's wait, garbage collection, native code outside JavaScript,
 * and the functions that took the most. V8 samples on the wall clock: a
 * process waiting for a core while in a function is counted in it, so with
 * more processes than cores the figures are shares, not CPU time (the bench
 * reads CPU time from /proc).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Marks {
  phases: { name: string; startUs: number }[];
  pids: { primary: number[]; load: number[] };
}

const { values: args, positionals } = parseArgs({ options: { top: { type: 'string', default: '12' } }, allowPositionals: true, strict: true });
const dir = positionals[0];
if (dir === undefined) {
  process.stderr.write('usage: npm run bench:profile -- DIR [--top N]   (DIR as given to npm run bench -- --profile DIR)\n');
  process.exit(2);
}
const marks = JSON.parse(fs.readFileSync(path.join(dir, 'phases.json'), 'utf8')) as Marks;
const TOP = Number(args.top);

/** Self time per (function, file:line) in µs, and the special nodes V8 names in parentheses. */
type Tally = Map<string, number>;

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (url === '') return functionName || '(anonymous)';
  const file = url.replace(/^file:\/\//, '').replace(/^.*\/(src|bench|node_modules)\//, '$1/');
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
}

function role(pid: number): string {
  if (marks.pids.primary.includes(pid)) return 'server primary';
  if (marks.pids.load.includes(pid)) return 'load generators';
  return 'server workers';
}

/** phase → role → tally */
const byPhase = new Map<string, Map<string, Tally>>();
const processes = new Map<string, number>();

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
  const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1] ?? NaN);
  const who = role(pid);
  processes.set(who, (processes.get(who) ?? 0) + 1);
  const profile = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  let t = profile.startTime;
  let phase = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const span = profile.timeDeltas[i + 1] ?? 0;
    while (phase < marks.phases.length && marks.phases[phase].startUs <= t) phase++;
    const name = phase === 0 ? 'before' : marks.phases[phase - 1].name;
    if (name === 'end' || name === 'before') continue;
    let roles = byPhase.get(name);
    if (roles === undefined) byPhase.set(name, (roles = new Map<string, Tally>()));
    let tally = roles.get(who);
    if (tally === undefined) roles.set(who, (tally = new Map<string, number>()));
    const node = nodes.get(profile.samples[i])!;
    // A pool thread waiting for work is idle, not busy.
    const key = node.callFrame.functionName === 'atomicsWaitLoop' ? '(idle)' : label(node);
    tally.set(key, (tally.get(key) ?? 0) + span);
  }
}

const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 1 : 0);
const out: string[] = [];
out.push(`profiles: ${[...processes].map(([r, n]) => `${n} ${r}`).join(', ')}`);
for (const p of marks.phases) {
  const roles = byPhase.get(p.name);
  if (roles === undefined) continue;
  const next = marks.phases[marks.phases.indexOf(p) + 1];
  const wall = next === undefined ? 0 : next.startUs - p.startUs;
  out.push('', `== ${p.name} (${ms(wall)} ms of wall time)`);
  for (const who of ['server primary', 'server workers', 'load generators']) {
    const tally = roles.get(who);
    if (tally === undefined) continue;
    const idle = tally.get('(idle)') ?? 0;
    const gc = tally.get('(garbage collector)') ?? 0;
    const program = tally.get('(program)') ?? 0;
    let busy = 0;
    for (const [k, v] of tally) if (k !== '(idle)') busy += v;
    out.push(`  ${who}: ${ms(busy)} ms not idle (GC ${ms(gc)}, native outside JS ${ms(program)}), ${ms(idle)} ms idle`);
    const top = [...tally].filter(([k]) => !k.startsWith('(idle')).sort((a, b) => b[1] - a[1]).slice(0, TOP);
    for (const [k, v] of top) out.push(`    ${ms(v).padStart(8)} ms  ${((100 * v) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${k}`);
  }
}
process.stdout.write(`${out.join('\n')}\n`);

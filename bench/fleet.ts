import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FloorCommand, FloorReply } from './floor-server.js';
import type { SimCommand, SimReply } from './sim-agents.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = ['--import', 'tsx'];

/** At most this many sockets per load-generator process (each may open 20,000 files). */
export const SOCKETS_PER_SIM = 15_000;

type StatusReply = Extract<SimReply, { k: 'status' }>;

/** The simulated agents, spread over as many processes as the socket budget needs. */
export class SimFleet {
  private readonly procs: ChildProcess[] = [];
  private readonly counts: number[] = [];
  /**
   * The agents that join a large environment have a process of their own:
   * decoding their snapshots must not delay the arrivals the others stamp
   * (a real agent has its host to itself).
   */
  private readonly joinerProc: ChildProcess;

  /** `nodeArgs`: extra options for every load process (a CPU profile). */
  constructor(readonly total: number, nodeArgs: string[] = []) {
    const n = Math.max(1, Math.ceil(total / SOCKETS_PER_SIM));
    for (let i = 0; i < n; i++) {
      this.counts.push(Math.floor(total / n) + (i < total % n ? 1 : 0));
      this.procs.push(fork(path.join(here, 'sim-agents.ts'), [], { execArgv: [...tsx, ...nodeArgs], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    this.joinerProc = fork(path.join(here, 'sim-agents.ts'), [], { execArgv: [...tsx, ...nodeArgs], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  }

  get pids(): number[] {
    return [...this.procs, this.joinerProc].map((p) => p.pid!);
  }

  get processes(): number {
    return this.procs.length;
  }

  /**
   * Connects `share` of the agents (the rest wait for `grow`). With a list of
   * environments, agent i follows envs[i % envs.length] (joiners the first).
   */
  start(mode: 'protocol' | 'floor', targets: string[], envs: string | string[], share = 1, concurrency = 500, token?: string, tlsCa?: string): void {
    const env = typeof envs === 'string' ? envs : envs[0];
    const list = typeof envs === 'string' ? {} : { envs };
    let id = 0;
    this.procs.forEach((p, i) => {
      // Each process spreads its sockets over every address, starting at a different one.
      const rotated = [...targets.slice(i % targets.length), ...targets.slice(0, i % targets.length)];
      const count = this.counts[i];
      p.send({ k: 'start', mode, targets: rotated, count, env, ...list, id, concurrency, initial: Math.round(count * share), ...(token === undefined ? {} : { token }), ...(tlsCa === undefined ? {} : { tlsCa }) } satisfies SimCommand);
      id += this.counts[i];
    });
    this.joinerProc.send({ k: 'start', mode, targets, count: 0, env, id, concurrency, initial: 0, ...(token === undefined ? {} : { token }), ...(tlsCa === undefined ? {} : { tlsCa }) } satisfies SimCommand);
  }

  /** The address agent `index` (in the order of `report`'s times) connects to, for the targets given to `start`. */
  targetOf(targets: string[], index: number): string {
    let offset = 0;
    for (let p = 0; p < this.counts.length; p++) {
      const count = this.counts[p];
      if (index < offset + count) return targets[(index - offset + p) % targets.length];
      offset += count;
    }
    throw new Error(`no agent ${index}`);
  }

  /** How many agents `start(…, share)` connects. */
  connectedTarget(share: number): number {
    return this.counts.reduce((n, c) => n + Math.round(c * share), 0);
  }

  grow(): void {
    for (const p of this.procs) p.send({ k: 'grow' } satisfies SimCommand);
  }

  join(env: string, count: number): void {
    this.joinerProc.send({ k: 'join', env, count } satisfies SimCommand);
  }

  watch(rev: number): void {
    for (const p of [...this.procs, this.joinerProc]) p.send({ k: 'watch', rev } satisfies SimCommand);
  }

  /** Arrival times of `rev` at every agent (NaN where it did not arrive), and at the joiners. */
  async report(rev: number): Promise<{ times: Float64Array; joinTimes: Float64Array }> {
    const parts = await Promise.all(this.procs.map((p) => this.ask<Extract<SimReply, { k: 'report' }>>(p, { k: 'report', rev }, 'report')));
    const times = new Float64Array(this.total);
    let offset = 0;
    for (const part of parts) {
      times.set(part.times, offset);
      offset += part.times.length;
    }
    const joiners = await this.ask<Extract<SimReply, { k: 'report' }>>(this.joinerProc, { k: 'report', rev }, 'report');
    return { times, joinTimes: joiners.joinTimes };
  }

  async status(): Promise<{ connected: number; gaps: number; snapshots: number; errors: number; resumed: number; heldMin: number; heldMax: number; joiners: number[] }> {
    const parts = await Promise.all(this.procs.map((p) => this.ask<StatusReply>(p, { k: 'status' }, 'status')));
    const joining = await this.ask<StatusReply>(this.joinerProc, { k: 'status' }, 'status');
    return {
      connected: parts.reduce((n, p) => n + p.connected, 0),
      gaps: parts.reduce((n, p) => n + p.gaps, joining.gaps),
      snapshots: parts.reduce((n, p) => n + p.snapshots, joining.snapshots),
      errors: parts.reduce((n, p) => n + p.errors, joining.errors),
      resumed: parts.reduce((n, p) => n + p.resumed, joining.resumed),
      heldMin: Math.min(...parts.map((p) => p.heldMin)),
      heldMax: Math.max(...parts.map((p) => p.heldMax)),
      joiners: joining.current,
    };
  }

  /** Stop reconnecting (the other side is about to close). */
  quiet(): void {
    for (const p of [...this.procs, this.joinerProc]) p.send({ k: 'quiet' } satisfies SimCommand);
  }

  async close(): Promise<void> {
    await Promise.all([...this.procs, this.joinerProc].map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.send({ k: 'close' } satisfies SimCommand);
      setTimeout(() => p.kill('SIGKILL'), 3000).unref();
    })));
  }

  private ask<T extends SimReply>(p: ChildProcess, command: SimCommand, kind: SimReply['k']): Promise<T> {
    return new Promise((resolve) => {
      const onMessage = (m: SimReply): void => {
        if (m.k !== kind) return;
        p.off('message', onMessage);
        resolve(m as T);
      };
      p.on('message', onMessage);
      p.send(command);
    });
  }
}

/** The bare fan-out server of bench/floor-server.ts. */
export class FloorServer {
  readonly proc: ChildProcess;
  readonly heap = new HeapReports();
  constructor() {
    this.proc = fork(path.join(here, 'floor-server.ts'), [], { execArgv: [...tsx, '--expose-gc'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'pipe', 'ipc'], env: { ...process.env, NODE_OPTIONS: '--expose-gc' } });
    this.heap.follow(this.proc);
  }

  start(workers: number, listen: string[], cap: number): Promise<void> {
    return this.ask({ k: 'start', workers, listen, cap }, 'listening').then(() => undefined);
  }

  async connections(): Promise<number> {
    const reply = await this.ask({ k: 'count' }, 'count');
    return reply.k === 'count' ? reply.connections : 0;
  }

  fanout(bytes: number): void {
    this.proc.send({ k: 'fanout', bytes } satisfies FloorCommand);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.send({ k: 'stop' } satisfies FloorCommand);
    });
  }

  private ask(command: FloorCommand, kind: FloorReply['k']): Promise<FloorReply> {
    return new Promise((resolve) => {
      const onMessage = (m: FloorReply): void => {
        if (m.k !== kind) return;
        this.proc.off('message', onMessage);
        resolve(m);
      };
      this.proc.on('message', onMessage);
      this.proc.send(command);
    });
  }
}

/**
 * The memory lines server processes write on SIGUSR2 (after a collection):
 * the latest heap figure of each process, summed on demand. Other stderr
 * output is passed through.
 */
export class HeapReports {
  private readonly latest = new Map<number, number>();

  follow(proc: ChildProcess): void {
    let carry = '';
    proc.stderr!.on('data', (d: Buffer) => {
      const lines = (carry + d.toString()).split('\n');
      carry = lines.pop()!;
      for (const line of lines) {
        const m = /pid (\d+): rss \d+ KiB, heap used (\d+) KiB/.exec(line);
        if (m) this.latest.set(Number(m[1]), Number(m[2]) * 1024);
        else process.stderr.write(`${line}\n`);
      }
    });
  }

  /** Total heap in use across the processes that reported, in bytes. */
  total(): number {
    let sum = 0;
    for (const v of this.latest.values()) sum += v;
    return sum;
  }
}

/**
 * Many real agents (the Agent class: server choice, failover, moves, gap
 * detection) in the test process, each writing into a store in memory that
 * records every write, so a test can check that each release was applied
 * once, in order, with no gap — across failovers.
 */
import { MessageType, type EnvRev, type Release, type Snapshot } from '../../src/protocol/index.js';
import { Agent, AGENT_DEFAULTS, type AgentStore } from '../../src/agent/agent.js';
import { parseToken } from '../../src/security/token.js';
import { parseEndpoint } from '../../src/transport/client.js';

export interface Applied {
  env: string;
  rev: number;
  kind: 'release' | 'snapshot' | 'drop';
  /** For releases: the revision it followed. */
  prev?: number;
}

/** An agent store in memory: the revision and values of each environment, and the log of every write. */
export class MemoryAgentStore implements AgentStore {
  readonly envs = new Map<string, { rev: number; values: Map<string, string>; chain?: string }>();
  readonly log: Applied[] = [];

  held(): EnvRev[] {
    return [...this.envs].map(([env, e]) => ({ env, rev: e.rev, ...(e.chain === undefined ? {} : { chain: e.chain }) }));
  }

  chain(env: string): string {
    return this.envs.get(env)?.chain ?? '';
  }

  revision(env: string): number {
    return this.envs.get(env)?.rev ?? 0;
  }

  applyRelease(release: Release): void {
    if (release.drop === true) {
      this.envs.delete(release.env);
      this.log.push({ env: release.env, rev: release.rev, kind: 'drop' });
      return;
    }
    let e = this.envs.get(release.env);
    if (e === undefined) this.envs.set(release.env, (e = { rev: 0, values: new Map() }));
    for (const [key, json] of release.changes) {
      if (json === null) e.values.delete(key);
      else e.values.set(key, json);
    }
    e.rev = release.rev;
    if (release.chain === undefined) delete e.chain;
    else e.chain = release.chain;
    this.log.push({ env: release.env, rev: release.rev, kind: 'release', prev: release.prev });
  }

  applySnapshot(snapshot: Snapshot): void {
    this.envs.set(snapshot.env, { rev: snapshot.rev, values: new Map(snapshot.entries), ...(snapshot.chain === undefined ? {} : { chain: snapshot.chain }) });
    this.log.push({ env: snapshot.env, rev: snapshot.rev, kind: 'snapshot' });
  }

  /** A group of one revision's releases: in memory, one after the other is as good as one transaction. */
  applyGroup(messages: readonly (Release | Snapshot)[]): void {
    for (const m of messages) {
      if (m.t === MessageType.Release) this.applyRelease(m);
      else this.applySnapshot(m);
    }
  }

  /** The servers the agent remembers (kept in memory, for one run). */
  servers: string[] = [];

  rememberedServers(): string[] {
    return this.servers;
  }

  rememberServers(addrs: string[]): boolean {
    const next = [...new Set(addrs)].sort();
    if (next.join() === this.servers.join()) return false;
    this.servers = next;
    return true;
  }
}

export interface FleetAgent {
  name: string;
  agent: Agent;
  store: MemoryAgentStore;
  /** The server it is connected to now (HOST:PORT), if any. */
  server: string | undefined;
  /** Every server it connected to, in order. */
  connects: string[];
  disconnects: string[];
}

export class Fleet {
  readonly agents: FleetAgent[] = [];
  private readonly make: (entry: FleetAgent) => Agent;

  constructor(count: number, servers: string[], token: string, envs: string[] = [], prefix = 'fleet') {
    const parts = parseToken(token);
    if (parts === undefined) throw new Error(`not a token: ${token}`);
    this.make = (entry) => new Agent({
      ...AGENT_DEFAULTS,
      servers: servers.map(parseEndpoint),
      token: parts,
      envs,
      id: entry.name,
      // Acks soon, so status shows what the agents hold.
      ackDelayMs: 200,
    }, entry.store, {
      connected: (server) => {
        entry.server = server;
        entry.connects.push(server);
      },
      disconnected: (reason) => {
        entry.server = undefined;
        entry.disconnects.push(reason);
      },
    });
    for (let i = 0; i < count; i++) {
      const entry: FleetAgent = { name: `${prefix}-${i}`, agent: undefined as unknown as Agent, store: new MemoryAgentStore(), server: undefined, connects: [], disconnects: [] };
      entry.agent = this.make(entry);
      this.agents.push(entry);
    }
  }

  /** Stops agent `i` and starts a new one on the same store, as a restarted agent process would be. */
  async restart(i: number, downMs = 0): Promise<void> {
    const entry = this.agents[i];
    await entry.agent.stop();
    entry.server = undefined;
    await new Promise((resolve) => setTimeout(resolve, downMs));
    entry.agent = this.make(entry);
    entry.agent.start();
  }

  start(): void {
    for (const a of this.agents) a.agent.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.agent.stop()));
  }

  /** Agents connected now, by server. */
  byServer(): Map<string, FleetAgent[]> {
    const out = new Map<string, FleetAgent[]>();
    for (const a of this.agents) {
      if (a.server === undefined) continue;
      const list = out.get(a.server) ?? [];
      list.push(a);
      out.set(a.server, list);
    }
    return out;
  }

  get connected(): number {
    return this.agents.filter((a) => a.server !== undefined).length;
  }

  /**
   * Every agent applied, from its first write of `env` on, exactly the
   * releases `all` lists (the revisions of `env` in the database, ascending):
   * none skipped, none twice. A batch counts for the releases it joins (from
   * its prev to its rev). Returns the first agent that did not, or undefined.
   */
  missed(env: string, all: number[]): string | undefined {
    for (const a of this.agents) {
      const log = a.store.log.filter((w) => w.env === env);
      if (log.length === 0) return `${a.name} applied nothing of ${env}`;
      const revs = log.flatMap((w, i) => (i === 0 || w.kind !== 'release' ? [w.rev] : all.filter((r) => r > w.prev! && r <= w.rev)));
      const expected = all.filter((r) => r >= revs[0]);
      if (JSON.stringify(revs) !== JSON.stringify(expected)) return `${a.name} applied ${revs.join(',')} where the database has ${expected.join(',')}`;
    }
    return undefined;
  }

  /**
   * Every agent applied each release of `env` at most once, in revision
   * order, each one following the revision it held (no gap): a snapshot may
   * start (or restart) the sequence, never take it backwards. Returns the
   * first violation, or undefined.
   */
  violation(env: string): string | undefined {
    for (const a of this.agents) {
      let held = 0;
      const seen = new Set<number>();
      for (const w of a.store.log) {
        if (w.env !== env) continue;
        if (w.rev <= held) return `${a.name}: ${w.kind} ${env}@${w.rev} after holding ${held}`;
        if (w.kind === 'release' && w.prev !== held) return `${a.name}: release ${env}@${w.rev} follows ${w.prev}, but it held ${held} (a gap applied)`;
        if (seen.has(w.rev)) return `${a.name}: ${env}@${w.rev} applied twice`;
        seen.add(w.rev);
        held = w.rev;
      }
    }
    return undefined;
  }
}

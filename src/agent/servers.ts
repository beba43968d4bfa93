/**
 * The servers an agent knows and which one it tries next: those it was
 * configured with, those remembered from an earlier run, and those the
 * cluster announces (with their load and state). Choosing is a pure
 * function of that list and a random number.
 */
import type { PeerServer } from '../protocol/index.js';
import { errorText } from '../error-text.js';
import { trace } from '../trace.js';
import { endpointText, parseEndpoint, type Endpoint } from '../transport/client.js';
import type { LocalStore } from './local-store.js';

/** Where the agent keeps the servers the cluster announced, for its next start. */
export type ServerMemory = Pick<LocalStore, 'rememberedServers' | 'rememberServers'>;

/** Servers an agent knows at most, configured, remembered and announced together. */
const KNOWN_SERVERS_AT_MOST = 256;

/** Servers of one announced list taken at most. */
const LISTED_AT_MOST = 256;

/** The longest address taken from a server. */
const ADDRESS_AT_MOST = 300;

export interface KnownServer {
  endpoint: Endpoint;
  /** Agents it holds as last told, or -1 when not known. */
  agents: number;
  /**
   * alive, suspect, draining (from the servers); configured (from --servers,
   * no list heard yet); unlisted (from --servers, not in the last list; or
   * remembered from an earlier run); unreachable (its last connect failed,
   * until it connects or a list names it).
   */
  state: string;
  /** Given with --servers: never forgotten. */
  configured: boolean;
}

/**
 * The server to try next among `servers`: a random one weighted by how few
 * agents it holds (1 / (agents + the mean)), among the alive ones (then the
 * suspect, then configured ones the cluster did not list and those
 * remembered from an earlier run, then any: those whose last connect failed
 * come here), avoiding `current` (the one just left) when there is another.
 * Weighted, not "the least loaded": agents choosing at the same moment from
 * the same loads spread instead of all picking one server. `random` is in [0, 1).
 */
export function pickServer(servers: readonly KnownServer[], current: string | undefined, random: number): KnownServer {
  const others = servers.length > 1 ? servers.filter((s) => endpointText(s.endpoint) !== current) : servers;
  const usable = (states: string[]): readonly KnownServer[] => others.filter((s) => states.includes(s.state));
  let pool = usable(['alive', 'configured']);
  if (pool.length === 0) pool = usable(['suspect']);
  if (pool.length === 0) pool = usable(['unlisted']);
  if (pool.length === 0) pool = others;
  const known = pool.filter((s) => s.agents >= 0);
  const mean = known.length === 0 ? 1 : Math.max(1, known.reduce((n, s) => n + s.agents, 0) / known.length);
  const weights = pool.map((s) => 1 / ((s.agents >= 0 ? s.agents : mean) + mean));
  let pick = random * weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < pool.length; i++) {
    pick -= weights[i];
    if (pick <= 0) return pool[i];
  }
  return pool[pool.length - 1];
}

/** Every server the agent knows, and what it heard of each. */
export class KnownServers {
  private readonly servers = new Map<string, KnownServer>();
  private readonly memory: ServerMemory;

  constructor(configured: readonly Endpoint[], memory: ServerMemory) {
    this.memory = memory;
    for (const e of configured) this.servers.set(endpointText(e), { endpoint: e, agents: -1, state: 'configured', configured: true });
    // Servers the cluster announced before this start: tried like servers it no longer lists, after live configured ones.
    for (const addr of memory.rememberedServers()) {
      const endpoint = parseAddress(addr);
      if (endpoint !== undefined && !this.servers.has(addr)) this.servers.set(addr, { endpoint, agents: -1, state: 'unlisted', configured: false });
    }
  }

  /** How many servers it knows besides the configured ones (remembered from the cluster, at first). */
  get learned(): number {
    return [...this.servers.values()].filter((s) => !s.configured).length;
  }

  /** The server to connect to: `movingTo` when a Move named one the agent can know, else one chosen (pickServer). */
  choose(movingTo: string | undefined, current: string | undefined): KnownServer {
    const moving = movingTo === undefined ? undefined : this.servers.get(movingTo) ?? this.remember(movingTo);
    if (moving !== undefined) return moving;
    return pickServer([...this.servers.values()], current, Math.random());
  }

  /** The server at `addr` drains: chosen only when no server of a better standing is left. */
  draining(addr: string): void {
    const here = this.servers.get(addr);
    if (here !== undefined) here.state = 'draining';
  }

  /** Servers named in the hello, for failover (their load is learned from the next Peers). */
  learn(peers: string[]): void {
    for (const peer of peers) if (!this.servers.has(peer)) this.remember(peer);
    this.keep(peers);
  }

  /**
   * The servers of the cluster, as the server sees them now: their load and
   * state replace what was known; servers no longer listed (dead, stopped)
   * are forgotten, except those this agent was configured with.
   */
  update(list: PeerServer[]): void {
    const listed = new Set<string>();
    for (const p of list.slice(0, LISTED_AT_MOST)) {
      const known = this.servers.get(p.addr) ?? this.remember(p.addr);
      if (known === undefined) continue;
      listed.add(p.addr);
      known.agents = p.agents;
      known.state = p.state;
    }
    for (const [addr, known] of this.servers) {
      if (listed.has(addr)) continue;
      if (known.configured) {
        // Configured but not among the cluster's servers now (dead, stopped): tried only when none of those answers.
        known.state = 'unlisted';
        known.agents = -1;
      } else {
        this.servers.delete(addr);
      }
    }
    trace('agent', `servers: ${list.map((p) => `${p.addr} ${p.state} ${p.agents}`).join(', ')}`);
    this.keep([...listed]);
  }

  private remember(addr: string): KnownServer | undefined {
    // Whatever a server announces, the agent knows a bounded number of servers (a cluster has tens).
    if (this.servers.size >= KNOWN_SERVERS_AT_MOST || addr.length > ADDRESS_AT_MOST) return undefined;
    const endpoint = parseAddress(addr);
    if (endpoint === undefined) return undefined;
    const known: KnownServer = { endpoint, agents: -1, state: 'alive', configured: false };
    this.servers.set(addr, known);
    return known;
  }

  /**
   * Keeps the servers the cluster announced in the store (written only when
   * the set changed), so that a restart finds the cluster even when every
   * configured server is gone. An empty list says nothing (a server of the
   * embedded store names no peers) and leaves what is kept.
   */
  private keep(addrs: string[]): void {
    if (addrs.length === 0) return;
    try {
      // Added to what was kept, newest first, never replacing it: while a whole cluster stops, each server names only
      // the others that are not draining, and a list cut down to one of them would lose the rest for the next start.
      if (this.memory.rememberServers([...addrs, ...this.memory.rememberedServers()])) trace('agent', `remembering servers ${addrs.join(', ')}`);
    } catch (err) {
      // Only a hint for the next start: a store that cannot be written stops the agent at its next release.
      trace('agent', `cannot remember the servers: ${errorText(err)}`);
    }
  }
}

function parseAddress(addr: string): Endpoint | undefined {
  try {
    return parseEndpoint(addr);
  } catch {
    return undefined;
  }
}

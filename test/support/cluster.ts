/**
 * Servers of one fresh MariaDB database as real processes, for the tests of
 * peers and of faults: started, killed and restarted with the same ports and
 * id; proxies a test can cut; admin clients and status.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '../../src/reader/index.js';
import { AdminClient } from '../../src/admin/client.js';
import { connect, parseEndpoint } from '../../src/transport/client.js';
import { parseToken } from '../../src/security/token.js';
import type { StatusResult } from '../../src/protocol/index.js';
import { CuttableProxy, databaseName, dropDatabase, MYSQL_BASE } from './mysql.js';
import { Fleet } from './fleet.js';
import { ADMIN_PASSWORD, agentToken, freePort, Proc, Procs, startServer, tempDir, waitFor } from './procs.js';

export interface Server {
  proc: Proc;
  address: string;
  peer: string;
  id: string;
  args: string[];
}

/** Servers of one fresh database; each with its peer port given, so a restart takes the same one. */
export class Cluster {
  readonly procs = new Procs();
  readonly dir = tempDir('vitefa-peers-');
  readonly db = databaseName();
  readonly url = `${MYSQL_BASE}/${this.db}`;
  readonly servers: Server[] = [];
  private readonly admins: AdminClient[] = [];
  private readonly proxies: CuttableProxy[] = [];

  async start(count: number, extra: (i: number) => string[] = () => [], config?: object): Promise<void> {
    for (let i = 0; i < count; i++) await this.add(extra(i), config);
  }

  async add(extra: string[] = [], config?: object, url = this.url): Promise<Server> {
    const peer = `127.0.0.1:${await freePort()}`;
    const args = ['--peer-listen', peer, '--poll-ms', '60000', ...extra];
    if (config !== undefined) {
      const file = path.join(this.dir, `server-${this.servers.length}.json`);
      fs.writeFileSync(file, JSON.stringify(config));
      args.push('--config', file);
    }
    const { proc, address } = await startServer(url, args);
    this.procs.track(proc);
    const server: Server = { proc, address, peer, id: `${os.hostname()}/${address}`, args };
    this.servers.push(server);
    return server;
  }

  /** Starts a stopped server again with the same arguments (its id, ports and generation line). */
  async restart(server: Server, url = this.url): Promise<void> {
    const proc = this.procs.track(new Proc(['server', '--listen', server.address, '--store', url, ...server.args]));
    await proc.waitForOutput(/listening on/, 20_000);
    server.proc = proc;
  }

  /**
   * Creates environment `live` and starts `count` in-process agents following
   * it, spread over every server, once their token has reached them all.
   */
  async startFleet(count: number): Promise<Fleet> {
    await (await this.admin(this.servers[0])).request({ op: 'env.add', env: 'live' });
    const token = await agentToken(this.servers[0].address, 'fleet', ['live']);
    await this.untilTokenKnown(token);
    const fleet = new Fleet(count, this.servers.map((s) => s.address), token, ['live']);
    fleet.start();
    await waitFor('every agent connected', () => fleet.connected === count, 30_000, 50);
    return fleet;
  }

  /**
   * Waits until each of `servers` logs an agent in with `token` (tokens reach
   * the other servers with the credentials' stamp, within about a second).
   */
  async untilTokenKnown(token: string, servers: Server[] = this.servers): Promise<void> {
    const parts = parseToken(token);
    if (parts === undefined) throw new Error(`not a token: ${token}`);
    for (const server of servers) {
      await waitFor(`${server.address} knows the token`, async () => {
        const probe = await connect({
          ...parseEndpoint(server.address), role: 'agent', id: 'token-probe', login: { user: parts.id, secret: parts.secret }, timeoutMs: 10_000,
          onMessage: () => undefined, onClose: () => undefined,
        });
        probe.end('the token is known');
        return true;
      }, 30_000, 200);
    }
  }

  /** A TCP proxy in front of `target` that a test can cut and restore. */
  async proxy(target: string): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(parseEndpoint(target));
    await proxy.start(await freePort());
    this.proxies.push(proxy);
    return proxy;
  }

  async admin(server: Server): Promise<AdminClient> {
    const client = await AdminClient.connect({ ...parseEndpoint(server.address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
    this.admins.push(client);
    return client;
  }

  /** Waits until `from`'s hello names `to` among its servers (the two have joined). */
  async untilNamed(from: Server, to: Server, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${from.address} names ${to.address} to its admins`, async () => {
      const client = await this.admin(from);
      try {
        return client.peers.includes(to.address);
      } finally {
        client.close();
      }
    }, timeoutMs, 200);
  }

  async status(server: Server, env?: string, agent?: string): Promise<StatusResult> {
    const admin = await this.admin(server);
    try {
      return await admin.request({ op: 'status', ...(env === undefined ? {} : { env }), ...(agent === undefined ? {} : { agent }) });
    } finally {
      admin.close();
    }
  }

  async close(): Promise<void> {
    for (const a of this.admins) a.close();
    for (const p of this.proxies) await p.cut().catch(() => undefined);
    await this.procs.killAll();
    await dropDatabase(this.db);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export function readAgent(store: string, env: string, key: string): unknown {
  if (!fs.existsSync(path.join(store, 'data.mdb'))) return undefined;
  const reader = ConfigReader.open(store);
  try {
    return reader.get(env, key);
  } finally {
    void reader.close();
  }
}


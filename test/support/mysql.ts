import net from 'node:net';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

/** The MySQL server tests run against (never mocked; unreachable means the tests fail). */
export const MYSQL_BASE = (process.env.VITEFA_TEST_MYSQL ?? 'mysql://root@127.0.0.1:3306').replace(/\/$/, '');

/** A fresh database name; `dropDatabase` removes it. */
export function databaseName(prefix = 'vitefa_t_'): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

export async function dropDatabase(name: string): Promise<void> {
  const conn = await mysql.createConnection(MYSQL_BASE);
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await conn.end();
  }
}

export async function query<T>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const conn = await mysql.createConnection(`${MYSQL_BASE}/${database}`);
  try {
    const [rows] = await conn.query(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

/**
 * A TCP proxy in front of MySQL that a test can cut and restore, to take the
 * database away from a server without touching the real one.
 */
const COMMIT_PACKET = Buffer.concat([Buffer.from([7, 0, 0, 0, 3]), Buffer.from('COMMIT')]);

export class CuttableProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private frozen = false;
  private freezeOnCommit = false;
  private readonly held: (() => void)[] = [];
  port = 0;
  private readonly target: { host: string; port: number };

  /** In front of MySQL, or of any TCP `target` (a server's peer port). */
  constructor(target?: { host: string; port: number }) {
    const url = new URL(MYSQL_BASE);
    this.target = target ?? { host: url.hostname, port: Number(url.port || 3306) };
  }

  /** The MySQL URL through this proxy, for database `db`. */
  url(db: string): string {
    const url = new URL(MYSQL_BASE);
    url.port = String(this.port);
    url.pathname = `/${db}`;
    return url.toString();
  }

  async start(port = 0): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      // Forwarded by hand, so that the proxy can freeze (hold every byte, as a SIGSTOPped database does).
      let wroteChanges = false;
      const forward = (from: net.Socket, to: net.Socket, toDatabase: boolean) => from.on('data', (chunk: Buffer) => {
        if (this.frozen) {
          this.held.push(() => to.write(chunk));
          return;
        }
        to.write(chunk);
        if (!toDatabase || !this.freezeOnCommit) return;
        // The COMMIT (a COM_QUERY packet: 3-byte length, sequence 0, command 3) of a release, on the connection that wrote its changes.
        if (chunk.includes('vitefa_changes')) wroteChanges = true;
        if (wroteChanges && chunk.includes(COMMIT_PACKET)) {
          this.freezeOnCommit = false;
          this.frozen = true;
        }
      });
      forward(client, upstream, true);
      forward(upstream, client, false);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port || this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Drops every connection and stops accepting: the database is "down". */
  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  /** Holds every byte in both directions, connections kept open: the database hangs (a SIGSTOP, a stalled disk). */
  freeze(): void {
    this.frozen = true;
  }

  /** Freezes right after the COMMIT of a release has gone through to the database: it commits, its answer is held. */
  freezeAfterCommit(): void {
    this.freezeOnCommit = true;
  }

  /** Whether bytes are being held now. */
  get isFrozen(): boolean {
    return this.frozen;
  }

  /** Delivers what was held, in order, and forwards again: the database resumes. */
  thaw(): void {
    this.frozen = false;
    for (const send of this.held.splice(0)) send();
  }

  /** Accepts again on the same port: the database is "back". */
  restore(): Promise<void> {
    return this.start(this.port);
  }
}

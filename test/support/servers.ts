import fs from 'node:fs';
import path from 'node:path';
import { ConfigServer } from '../../src/server/process/server.js';
import { resolveLimits, type ServerLimits } from '../../src/server/limits.js';
import { LmdbStore } from '../../src/server/store/lmdb/store.js';
import type { Store } from '../../src/server/store/types.js';
import { memoryPair, TestPeer } from './memory.js';
import { makeVerifier } from '../../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../../src/security/token.js';
import { ADMIN_PASSWORD, tempDir } from './common.js';

export interface MemoryServer {
  server: ConfigServer;
  /** Makes an agent token granting `envs`; returns it. */
  token(name: string, envs?: string[]): Promise<string>;
  /** Makes an account with `password` (and read-only grants `reads`). */
  account(name: string, role: 'viewer' | 'editor' | 'admin', envs?: string[], password?: string, reads?: string[]): Promise<void>;
  /** A new in-memory connection from `addr` (HOST:PORT), with the far end as a TestPeer. */
  connect(addr?: string, read?: boolean): TestPeer;
  close(): Promise<void>;
}

/**
 * A server in this process on the embedded store in a fresh folder (or on
 * `store`, with its peer port on port 0), bound to port 0 on loopback; tests
 * reach it through in-memory connections.
 */
export async function memoryServer(options: { limits?: Partial<ServerLimits>; maxAgents?: number; store?: Store } = {}): Promise<MemoryServer> {
  const dir = tempDir('vitefa-mem-');
  const lines: string[] = [];
  const server = new ConfigServer({
    store: options.store ?? new LmdbStore(path.join(dir, 'server'), { retainReleases: 1000 }),
    ...(options.store?.shared === true ? { peerListen: { host: '127.0.0.1', port: 0 } } : {}),
    listen: [{ host: '127.0.0.1', port: 0 }],
    peers: [],
    maxAgents: options.maxAgents ?? 1000,
    limits: resolveLimits(options.limits),
    pollMs: 0,
    passwordIterations: 4096,
    adminPassword: ADMIN_PASSWORD,
    log: (line) => void lines.push(line),
  });
  await server.start();
  let n = 0;
  const asAdmin = { account: 'admin', addr: 'test:0' };
  return {
    server,
    token: async (name, envs = ['*']) => {
      const t = newToken();
      await server.access.execute({ op: 'token.add', name, envs, id: t.id, verifier: makeVerifier(t.secret, TOKEN_ITERATIONS) }, asAdmin);
      return t.text;
    },
    account: async (name, role, envs = [], password = `${name}-password`, reads) => {
      await server.access.execute({ op: 'user.add', name, role, envs, ...(reads === undefined ? {} : { reads }), verifier: makeVerifier(password, 4096) }, asAdmin);
    },
    connect: (addr = `127.0.0.1:${40000 + n++}`, read = true) => {
      const [client, end] = memoryPair();
      const peer = new TestPeer(client, read);
      server.attach(end, addr);
      return peer;
    },
    close: async () => {
      await server.stop('forced');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

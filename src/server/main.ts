import { trace } from '../trace.js';
import { resolveServerConfig, type ServerFlags } from './config.js';
import { ConfigServer, SERVER_DEFAULTS } from './server.js';
import { createStore } from './store/create.js';

/** `vitefa server`: runs until SIGINT/SIGTERM (graceful; a second signal forces). */
export async function runServer(flags: ServerFlags): Promise<void> {
  const config = resolveServerConfig(flags);
  const store = createStore(config.store, { retainReleases: config.history });
  if (config.migrateOnly) {
    await store.open();
    await store.close();
    process.stdout.write(`schema of ${store.description} is up to date\n`);
    return;
  }
  const server = new ConfigServer({
    ...SERVER_DEFAULTS,
    host: config.listen.host,
    port: config.listen.port,
    store,
    adminToken: config.adminToken,
    peers: config.peers,
    maxConnections: config.maxAgents,
    pollMs: config.pollMs ?? (config.store.startsWith('mysql://') ? 200 : 0),
    log: (line) => process.stderr.write(`vitefa server: ${line}\n`),
  });
  await server.start();
  process.stdout.write(`vitefa server ${server.serverId} listening on ${server.address}, store ${store.description}\n`);
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    trace('server', `${signal} received`);
    if (signals > 1) process.exit(130);
    void server.stop('graceful').then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

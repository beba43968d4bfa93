import cluster from 'node:cluster';
import os from 'node:os';
import { trace } from '../../trace.js';
import { ClusterPrimary } from './cluster.js';
import { runWorker } from './worker.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import { resolveServerConfig, type ServerConfig, type ServerFlags } from './config.js';
import { ConfigServer } from './server.js';
import { isLoopback } from '../edge/session.js';
import { readServerTls } from '../edge/tls.js';
import { createStore } from '../store/create.js';
import type { Store } from '../store/types.js';

/**
 * Connections one worker process holds at most. The process may open 20,000
 * files (a hard limit here); the rest is headroom for the IPC channel,
 * listening sockets and sockets being accepted and refused.
 */
export const CONNECTIONS_PER_WORKER = 15_000;

/** Workers follow the connection target as well as the core count. */
export function workerCount(config: ServerConfig): number {
  return config.workers ?? Math.max(os.availableParallelism(), Math.ceil(config.maxAgents / CONNECTIONS_PER_WORKER));
}

/**
 * Connections one worker takes before it refuses with SERVER_FULL. Room for an
 * uneven spread (the kernel, not the primary, picks the worker that accepts),
 * within the file limit.
 */
export function workerCap(maxAgents: number, workers: number): number {
  return Math.min(CONNECTIONS_PER_WORKER + 2_500, Math.ceil((maxAgents / workers) * 1.25));
}

/** `vitefa server`: runs until SIGINT/SIGTERM (graceful; a second signal forces). */
export async function runServer(flags: ServerFlags): Promise<void> {
  if (cluster.isWorker) {
    // A worker takes its whole configuration from the primary.
    runWorker();
    return;
  }
  const config = resolveServerConfig(flags);
  const log = (line: string): void => void process.stderr.write(`vitefa server: ${line}\n`);
  const serving = { listen: config.listen, peers: config.peers };
  const clustering = {
    ...(config.peerListen === undefined ? {} : { peerListen: config.peerListen }),
    ...(config.adminListen === undefined ? {} : { adminListen: config.adminListen }),
    ...(config.peerAdvertise === undefined ? {} : { peerAdvertise: config.peerAdvertise }),
    ...(config.advertise === undefined ? {} : { advertise: config.advertise }),
    ...(config.peerSettings === undefined ? {} : { peerSettings: config.peerSettings }),
  };
  const accounts = {
    passwordIterations: config.passwordIterations,
    ...(config.adminPassword === undefined ? {} : { adminPassword: config.adminPassword }),
    ...(config.adminPasswordFrom === undefined ? {} : { adminPasswordFrom: config.adminPasswordFrom }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
  };
  // Bad TLS files are one clear line before anything is opened (the real ticket keys come from the store).
  if (config.tls !== undefined) readServerTls(config.tls, Buffer.alloc(48));
  const open = config.listen.filter((e) => !isLoopback(e.host));
  if (config.tls === undefined && open.length > 0) {
    log(`WARNING: listening on ${open.map((e) => `${e.host}:${e.port}`).join(', ')} without TLS: logins stay safe (SCRAM), but configuration travels in the clear and can be altered on the way; serve TLS with --tls-cert and --tls-key`);
  }
  const store = createStore(config.store, { retainReleases: config.history });
  if (config.adoptStore) await adoptStore(store, config.serverId, log);
  if (config.migrateOnly) {
    await store.open();
    await store.close();
    process.stdout.write(`schema of ${store.description} is up to date\n`);
    return;
  }
  // Gossip carries releases between servers at once; the poll is the last safety net.
  const pollMs = config.pollMs ?? (config.store.startsWith('mysql://') ? 5000 : 0);
  const workers = workerCount(config);
  let stop: (mode: 'graceful' | 'forced') => Promise<void>;
  let reloadTls: () => Promise<void>;
  let address: string;
  let adminAddress: string | undefined;
  const serverId = config.serverId;
  if (workers === 0) {
    const server = new ConfigServer({ ...serving, ...accounts, ...clustering, serverId, store, maxAgents: config.maxAgents, limits: config.limits, pollMs, log });
    await server.start();
    reportMemoryOnSignal(() => `server with ${server.host.connections} connections,`);
    address = server.address;
    adminAddress = server.adminAddress;
    stop = (mode) => server.stop(mode);
    reloadTls = () => server.reloadTls();
    server.hub.onBroken((err) => stopBroken(err, stop, log));
  } else {
    const setup = { ...serving, maxAgents: workerCap(config.maxAgents, workers) };
    const primary = new ClusterPrimary({ ...accounts, ...clustering, serverId, store, workers, pollMs, limits: config.limits, setup, log });
    await primary.start();
    address = primary.addresses.join(',');
    adminAddress = primary.adminAddress;
    stop = (mode) => primary.stop(mode);
    reloadTls = () => primary.reloadTls();
    primary.hub.onBroken((err) => stopBroken(err, stop, log));
  }
  const mode = workers === 0 ? 'one process' : `${workers} workers`;
  const admins = adminAddress === undefined ? '' : `, admin port ${adminAddress}`;
  process.stdout.write(`vitefa server ${serverId} listening on ${address}${config.tls === undefined ? '' : ' (TLS)'} (${mode})${admins}, store ${store.description}\n`);
  let signals = 0;
  const onSignal = (signal: string): void => {
    signals++;
    trace('server', `${signal} received`);
    void stop(signals > 1 ? 'forced' : 'graceful').then(() => process.exit(signals > 1 ? 130 : 0));
    if (signals > 1) setTimeout(() => process.exit(130), 1000).unref();
  };
  process.on('SIGHUP', () => {
    if (config.tls === undefined) return log('SIGHUP: no TLS to reload');
    reloadTls().then(
      () => log(`SIGHUP: certificate ${config.tls!.cert} reloaded; connected sessions go on`),
      (err: Error) => log(`SIGHUP: the certificate was not reloaded, the old one stays in use: ${err.message}`),
    );
  });
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const id = await store.identity.id().catch(() => '');
  if (id !== '') log(`store id ${id}`);
}

/** Exit status of a server that stopped because its history and the store's disagree. */
export const EXIT_CHAIN_BROKEN = 4;

/**
 * A release that does not follow this server's history: the server stops
 * serving at once (agents fail over, writes go elsewhere) and exits; started
 * again, it loads the store afresh.
 */
function stopBroken(err: Error, stop: (mode: 'graceful' | 'forced') => Promise<void>, log: (line: string) => void): void {
  log(`stopping: ${err.message}; this server's history and the store's disagree (was the database restored under it?); start it again to load the store afresh`);
  void stop('forced').finally(() => process.exit(EXIT_CHAIN_BROKEN));
  setTimeout(() => process.exit(EXIT_CHAIN_BROKEN), 5_000).unref();
}

/**
 * --adopt-store: this store becomes a store of its own, on purpose (a
 * restored copy made the new production). A new store id, so that the
 * servers of the store it was copied from and this one refuse each other;
 * the registry emptied of their rows; a new peer key; one audit entry.
 */
async function adoptStore(store: Store, serverId: string, log: (line: string) => void): Promise<void> {
  await store.open();
  try {
    const { before, after } = await store.identity.adopt(serverId);
    await store.access.appendAudit([{
      time: Date.now(), actor: `server ${serverId}`, addr: '', action: 'store.adopt', env: '', result: 'ok', code: '',
      detail: `store ${store.description} adopted as a store of its own: id ${before || '(none)'} -> ${after}; registry and peer key reset`,
    }]);
    log(`adopted ${store.description} as a store of its own: store id ${before || '(none)'} -> ${after}; servers of the store it was copied from will refuse it, and it them`);
  } finally {
    await store.close();
  }
}

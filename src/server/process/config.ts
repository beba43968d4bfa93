import fs from 'node:fs';
import os from 'node:os';
import { z } from 'zod';
import { CONTROL_CHARACTERS, LocalErrorCode, VitefaError } from '../../protocol/index.js';
import { endpointText, parseEndpoint, type Endpoint } from '../../transport/client.js';
import { SCRAM_DEFAULT_ITERATIONS, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS } from '../../security/scram.js';
import { LimitsSchema, resolveLimits, type ServerLimits } from '../limits.js';
import type { ServerTlsFiles } from '../edge/tls.js';
import type { PeerSettings } from '../peers/settings.js';

/** A server's settings, from flags, then VITEFA_* variables, then the config file, then defaults. */
export interface ServerConfig {
  /** One or more addresses (several loopback addresses let one host hold more than 28k connections per address). */
  listen: Endpoint[];
  store: string;
  workers?: number;
  maxAgents: number;
  /** Peer ports of other servers to join through (the store's registry names the rest). */
  peers: string[];
  /** This server's id, kept across restarts (default: host name and first listen address). */
  serverId: string;
  /** The peer port (MySQL stores; default: the first listen address, one port up). */
  peerListen?: Endpoint;
  /** The admin port: admin sessions served by the process that commits (the primary), away from the fan-out. */
  adminListen?: Endpoint;
  /** Where other servers reach the peer port, when not the address it binds. */
  peerAdvertise?: string;
  /** Addresses agents are told to use, when not the listen addresses. */
  advertise?: string[];
  history: number;
  /** Store poll interval in ms (default: 5000 for MySQL, the safety net behind gossip; off for the embedded store). */
  pollMs?: number;
  migrateOnly: boolean;
  /** Give the store a new identity before serving (--adopt-store). */
  adoptStore: boolean;
  /** Every limit, defaults overridden by the config file's "limits". */
  limits: ServerLimits;
  /** PBKDF2 iterations of accounts this server creates (the first admin's too). */
  passwordIterations: number;
  /** VITEFA_ADMIN_PASSWORD: the first admin's password, for a store without accounts. */
  adminPassword?: string;
  /** Where adminPassword came from, for the log: the login file `vitefa start` chose it for (VITEFA_START_LOGIN_FILE). */
  adminPasswordFrom?: string;
  /** TLS on every connection: certificate and key, and a client CA to require client certificates. */
  tls?: ServerTlsFiles;
  /** Gossip, failure detection and rebalancing settings (defaults in PEER_DEFAULTS). */
  peerSettings?: Partial<PeerSettings>;
}

const positive = z.number().int().positive();

/** The config file: a JSON object with these fields, all optional; unknown fields are refused. */
const FileSchema = z.strictObject({
  listen: z.string().optional(),
  store: z.string().optional(),
  passwordIterations: z.number().int().min(SCRAM_MIN_ITERATIONS).max(SCRAM_MAX_ITERATIONS).optional(),
  workers: z.number().int().min(0).optional(),
  maxAgents: positive.optional(),
  peers: z.array(z.string()).optional(),
  serverId: z.string().min(1).max(255).optional(),
  peerListen: z.string().optional(),
  adminListen: z.string().optional(),
  peerAdvertise: z.string().optional(),
  advertise: z.array(z.string()).optional(),
  history: positive.optional(),
  pollMs: positive.optional(),
  limits: LimitsSchema.optional(),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1), clientCa: z.string().min(1).optional() }).optional(),
  /** Gossip, failure detection and rebalancing (docs/cluster.md). */
  cluster: z.strictObject({
    gossipMs: z.number().int().min(100).max(60_000),
    registryMs: z.number().int().min(500).max(600_000),
    joinTimeoutMs: z.number().int().min(0).max(600_000),
    suspectAfterMs: z.number().int().min(500).max(3_600_000),
    deadAfterMs: z.number().int().min(1_000).max(3_600_000),
    forgetAfterMs: z.number().int().min(60_000).max(30 * 86_400_000),
    rebalancePerSecond: z.number().int().min(0).max(100_000),
    drainTimeoutMs: z.number().int().min(0).max(600_000),
    moveWithinMs: z.number().int().min(0).max(600_000),
  }).partial().refine((c) => c.deadAfterMs === undefined || c.suspectAfterMs === undefined || c.deadAfterMs > c.suspectAfterMs, {
    message: 'deadAfterMs must be longer than suspectAfterMs',
  }).optional(),
});

export interface ServerFlags {
  listen?: string;
  store?: string;
  config?: string;
  workers?: string;
  maxAgents?: string;
  peers?: string;
  serverId?: string;
  peerListen?: string;
  adminListen?: string;
  peerAdvertise?: string;
  advertise?: string;
  history?: string;
  pollMs?: string;
  migrateOnly?: boolean;
  adoptStore?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
}

const usage = (message: string): VitefaError => new VitefaError(LocalErrorCode.USAGE, message);

function readFile(file: string): z.infer<typeof FileSchema> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `config file ${file}: ${(err as Error).message}`);
  }
  const result = FileSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new VitefaError(LocalErrorCode.BAD_FILE, `config file ${file}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return result.data;
}

function int(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw usage(`${what} must be a positive whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** Like int, but 0 is allowed (--workers 0: one process, no cluster). */
function whole(text: string | undefined, what: string): number | undefined {
  if (text === '0') return 0;
  return int(text, what);
}

function iterations(text: string | undefined): number | undefined {
  const n = int(text, 'VITEFA_PASSWORD_ITERATIONS');
  if (n !== undefined && (n < SCRAM_MIN_ITERATIONS || n > SCRAM_MAX_ITERATIONS)) {
    throw usage(`VITEFA_PASSWORD_ITERATIONS must be from ${SCRAM_MIN_ITERATIONS} to ${SCRAM_MAX_ITERATIONS}, got ${n}`);
  }
  return n;
}

const list = (text: string | undefined): string[] | undefined =>
  text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter(Boolean);

const WILDCARD = new Set(['0.0.0.0', '::', '[::]', '']);

export function resolveServerConfig(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const configFile = flags.config ?? env.VITEFA_CONFIG;
  const file = configFile === undefined ? {} : readFile(configFile);
  const listen = flags.listen ?? env.VITEFA_LISTEN ?? file.listen ?? '127.0.0.1:7400';
  const peers = list(flags.peers) ?? list(env.VITEFA_PEERS) ?? file.peers ?? [];
  for (const peer of peers) parseEndpoint(peer);
  const endpoints = listen.split(',').map((a) => a.trim()).filter(Boolean).map(parseEndpoint);
  const store = flags.store ?? env.VITEFA_STORE ?? file.store ?? './data/server';
  if (peers.length > 0 && !store.startsWith('mysql://')) {
    throw usage(`--peers needs a store the servers share: the embedded store ${store} serves one server; give --store mysql://…`);
  }
  const serverId = flags.serverId ?? env.VITEFA_SERVER_ID ?? file.serverId ?? `${os.hostname()}/${endpointText(endpoints[0] ?? { host: '127.0.0.1', port: 7400 })}`;
  if (serverId.length === 0 || serverId.length > 255) throw usage(`a server id has 1 to 255 characters, got ${serverId.length}`);
  // It is shown in every admin's status and sent in every hello (which refuses them).
  if (CONTROL_CHARACTERS.test(serverId)) throw usage('a server id holds no control characters');
  const config: ServerConfig = {
    listen: endpoints,
    store,
    serverId,
    maxAgents: int(flags.maxAgents, '--max-agents') ?? int(env.VITEFA_MAX_AGENTS, 'VITEFA_MAX_AGENTS') ?? file.maxAgents ?? 100_000,
    peers,
    history: int(flags.history, '--history') ?? int(env.VITEFA_HISTORY, 'VITEFA_HISTORY') ?? file.history ?? 10_000,
    migrateOnly: flags.migrateOnly === true,
    adoptStore: flags.adoptStore === true,
    limits: resolveLimits(file.limits),
    passwordIterations: iterations(env.VITEFA_PASSWORD_ITERATIONS) ?? file.passwordIterations ?? SCRAM_DEFAULT_ITERATIONS,
  };
  if (env.VITEFA_ADMIN_PASSWORD !== undefined && env.VITEFA_ADMIN_PASSWORD !== '') {
    config.adminPassword = env.VITEFA_ADMIN_PASSWORD;
    // `vitefa start` chose this password itself and hands it over in the variable: the log says so, and where it is kept.
    const chosenFor = env.VITEFA_START_LOGIN_FILE;
    if (chosenFor !== undefined && chosenFor !== '') config.adminPasswordFrom = `vitefa start chose and wrote to ${chosenFor}`;
  }
  const cert = flags.tlsCert ?? env.VITEFA_TLS_CERT ?? file.tls?.cert;
  const key = flags.tlsKey ?? env.VITEFA_TLS_KEY ?? file.tls?.key;
  const clientCa = flags.tlsClientCa ?? env.VITEFA_TLS_CLIENT_CA ?? file.tls?.clientCa;
  if ((cert === undefined) !== (key === undefined)) throw usage('TLS needs both a certificate and its key: --tls-cert FILE --tls-key FILE');
  if (clientCa !== undefined && cert === undefined) throw usage('--tls-client-ca needs TLS: give --tls-cert and --tls-key too');
  if (cert !== undefined) config.tls = { cert, key: key!, ...(clientCa === undefined ? {} : { clientCa }) };
  const peerListen = flags.peerListen ?? env.VITEFA_PEER_LISTEN ?? file.peerListen;
  if (peerListen !== undefined) config.peerListen = parseEndpoint(peerListen);
  const adminListen = flags.adminListen ?? env.VITEFA_ADMIN_LISTEN ?? file.adminListen;
  if (adminListen !== undefined) config.adminListen = parseEndpoint(adminListen);
  const peerAdvertise = flags.peerAdvertise ?? env.VITEFA_PEER_ADVERTISE ?? file.peerAdvertise;
  if (peerAdvertise !== undefined) config.peerAdvertise = endpointText(parseEndpoint(peerAdvertise));
  const advertise = list(flags.advertise) ?? list(env.VITEFA_ADVERTISE) ?? file.advertise;
  if (advertise !== undefined) config.advertise = advertise.map((a) => endpointText(parseEndpoint(a)));
  if (store.startsWith('mysql://')) {
    // Servers of a shared store tell agents and each other where they are: an address that binds every interface says nothing.
    const wild = endpoints.find((e) => WILDCARD.has(e.host));
    if (wild !== undefined && config.advertise === undefined) {
      throw usage(`--listen ${endpointText(wild)} binds every interface: with a shared store give --advertise HOST:PORT, the address agents and the other servers reach this one at`);
    }
    const peerHost = config.peerListen?.host ?? endpoints[0]?.host ?? '127.0.0.1';
    if (WILDCARD.has(peerHost) && config.peerAdvertise === undefined) {
      throw usage('the peer port binds every interface: give --peer-advertise HOST:PORT, the address the other servers reach its peer port at');
    }
  }
  if (file.cluster !== undefined) {
    const { suspectAfterMs, deadAfterMs, forgetAfterMs, ...rest } = file.cluster;
    const detector = { ...(suspectAfterMs === undefined ? {} : { suspectAfterMs }), ...(deadAfterMs === undefined ? {} : { deadAfterMs }), ...(forgetAfterMs === undefined ? {} : { forgetAfterMs }) };
    config.peerSettings = { ...rest, ...(Object.keys(detector).length > 0 ? { detector: detector as PeerSettings['detector'] } : {}) };
  }
  const pollMs = int(flags.pollMs, '--poll-ms') ?? int(env.VITEFA_POLL_MS, 'VITEFA_POLL_MS') ?? file.pollMs;
  if (pollMs !== undefined) config.pollMs = pollMs;
  const workers = whole(flags.workers, '--workers') ?? whole(env.VITEFA_WORKERS, 'VITEFA_WORKERS') ?? file.workers;
  if (workers !== undefined) config.workers = workers;
  return config;
}

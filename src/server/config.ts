import fs from 'node:fs';
import { z } from 'zod';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import { parseEndpoint, type Endpoint } from '../transport/client.js';
import { SCRAM_DEFAULT_ITERATIONS, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS } from '../security/scram.js';
import { LimitsSchema, resolveLimits, type ServerLimits } from './limits.js';
import type { ServerTlsFiles } from './tls.js';

/** A server's settings, from flags, then VITEFA_* variables, then the config file, then defaults. */
export interface ServerConfig {
  /** One or more addresses (several loopback addresses let one host hold more than 28k connections per address). */
  listen: Endpoint[];
  store: string;
  workers?: number;
  maxAgents: number;
  peers: string[];
  history: number;
  /** Store poll interval in ms (default: 200 for MySQL, off for the embedded store). */
  pollMs?: number;
  migrateOnly: boolean;
  /** Every limit, defaults overridden by the config file's "limits". */
  limits: ServerLimits;
  /** PBKDF2 iterations of accounts this server creates (the first admin's too). */
  passwordIterations: number;
  /** VITEFA_ADMIN_PASSWORD: the first admin's password, for a store without accounts. */
  adminPassword?: string;
  /** TLS on every connection: certificate and key, and a client CA to require client certificates. */
  tls?: ServerTlsFiles;
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
  history: positive.optional(),
  pollMs: positive.optional(),
  limits: LimitsSchema.optional(),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1), clientCa: z.string().min(1).optional() }).optional(),
});

export interface ServerFlags {
  listen?: string;
  store?: string;
  config?: string;
  workers?: string;
  maxAgents?: string;
  peers?: string;
  history?: string;
  pollMs?: string;
  migrateOnly?: boolean;
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
    const issue = result.error.issues[0]!;
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

export function resolveServerConfig(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const configFile = flags.config ?? env.VITEFA_CONFIG;
  const file = configFile === undefined ? {} : readFile(configFile);
  const listen = flags.listen ?? env.VITEFA_LISTEN ?? file.listen ?? '127.0.0.1:7400';
  const peers = list(flags.peers) ?? list(env.VITEFA_PEERS) ?? file.peers ?? [];
  for (const peer of peers) parseEndpoint(peer);
  const config: ServerConfig = {
    listen: listen.split(',').map((a) => a.trim()).filter(Boolean).map(parseEndpoint),
    store: flags.store ?? env.VITEFA_STORE ?? file.store ?? './data/server',
    maxAgents: int(flags.maxAgents, '--max-agents') ?? int(env.VITEFA_MAX_AGENTS, 'VITEFA_MAX_AGENTS') ?? file.maxAgents ?? 100_000,
    peers,
    history: int(flags.history, '--history') ?? int(env.VITEFA_HISTORY, 'VITEFA_HISTORY') ?? file.history ?? 10_000,
    migrateOnly: flags.migrateOnly === true,
    limits: resolveLimits(file.limits),
    passwordIterations: iterations(env.VITEFA_PASSWORD_ITERATIONS) ?? file.passwordIterations ?? SCRAM_DEFAULT_ITERATIONS,
  };
  if (env.VITEFA_ADMIN_PASSWORD !== undefined && env.VITEFA_ADMIN_PASSWORD !== '') config.adminPassword = env.VITEFA_ADMIN_PASSWORD;
  const cert = flags.tlsCert ?? env.VITEFA_TLS_CERT ?? file.tls?.cert;
  const key = flags.tlsKey ?? env.VITEFA_TLS_KEY ?? file.tls?.key;
  const clientCa = flags.tlsClientCa ?? env.VITEFA_TLS_CLIENT_CA ?? file.tls?.clientCa;
  if ((cert === undefined) !== (key === undefined)) throw usage('TLS needs both a certificate and its key: --tls-cert FILE --tls-key FILE');
  if (clientCa !== undefined && cert === undefined) throw usage('--tls-client-ca needs TLS: give --tls-cert and --tls-key too');
  if (cert !== undefined) config.tls = { cert, key: key!, ...(clientCa === undefined ? {} : { clientCa }) };
  const pollMs = int(flags.pollMs, '--poll-ms') ?? int(env.VITEFA_POLL_MS, 'VITEFA_POLL_MS') ?? file.pollMs;
  if (pollMs !== undefined) config.pollMs = pollMs;
  const workers = whole(flags.workers, '--workers') ?? whole(env.VITEFA_WORKERS, 'VITEFA_WORKERS') ?? file.workers;
  if (workers !== undefined) config.workers = workers;
  return config;
}

import fs from 'node:fs';
import { printable } from '../printable.js';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import { clientTls } from '../security/tls.js';
import { parseToken, type TokenParts } from '../security/token.js';
import { DEFAULT_AGENT_STORE } from '../reader/layout.js';
import { parseEndpoint } from '../transport/client.js';
import { Agent, AGENT_DEFAULTS } from './agent.js';
import { LocalStore } from './local-store.js';
import type { OutageReport } from './outage.js';

export interface AgentFlags {
  servers?: string;
  env?: string[];
  store?: string;
  mapSize?: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  id?: string;
}

/** The agent's token: from --token-file FILE, else VITEFA_AGENT_TOKEN (the token itself). */
export function readToken(flags: AgentFlags, env: NodeJS.ProcessEnv): TokenParts {
  let text: string | undefined;
  let from: string;
  if (flags.tokenFile !== undefined) {
    from = flags.tokenFile;
    try {
      text = fs.readFileSync(flags.tokenFile, 'utf8');
    } catch (err) {
      throw new VitefaError(LocalErrorCode.BAD_FILE, `cannot read the token file ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else {
    from = 'VITEFA_AGENT_TOKEN';
    text = env.VITEFA_AGENT_TOKEN;
  }
  if (text === undefined || text.trim() === '') {
    throw new VitefaError(LocalErrorCode.USAGE, 'the agent needs its token: --token-file FILE or VITEFA_AGENT_TOKEN (an admin makes one with: vitefa admin token add NAME ENV…)');
  }
  const token = parseToken(text);
  if (token === undefined) throw new VitefaError(LocalErrorCode.USAGE, `${from} does not hold an agent token (vta_…)`);
  return token;
}

/** `vitefa agent`: runs until SIGINT/SIGTERM; exits non-zero if the local store fails. */
export function runAgent(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): void {
  const servers = (flags.servers ?? env.VITEFA_SERVERS ?? '127.0.0.1:7400').split(',').filter(Boolean).map(parseEndpoint);
  const envs = flags.env ?? (env.VITEFA_ENVS ? env.VITEFA_ENVS.split(',').filter(Boolean) : []);
  const mapSizeText = flags.mapSize ?? env.VITEFA_MAP_SIZE;
  const mapSize = mapSizeText === undefined ? 1024 * 1024 * 1024 : Number(mapSizeText);
  if (!Number.isSafeInteger(mapSize) || mapSize < 1024 * 1024) {
    throw new VitefaError(LocalErrorCode.USAGE, `--map-size must be a number of bytes of at least 1048576, got ${mapSizeText}`);
  }
  const token = readToken(flags, env);
  const tls = clientTls({ ca: flags.tlsCa ?? env.VITEFA_TLS_CA, cert: flags.tlsCert ?? env.VITEFA_TLS_CLIENT_CERT, key: flags.tlsKey ?? env.VITEFA_TLS_CLIENT_KEY });
  const dir = flags.store ?? env.VITEFA_AGENT_STORE ?? DEFAULT_AGENT_STORE;
  const store = LocalStore.open(dir, {
    mapSize,
    staleReaders: (n) => process.stdout.write(`agent cleared ${n} reader slot${n === 1 ? '' : 's'} left by processes that died while reading ${dir}\n`),
  });
  const id = flags.id ?? env.VITEFA_AGENT_ID;
  if (id !== undefined && !/^[\x21-\x7e]{1,256}$/.test(id)) {
    throw new VitefaError(LocalErrorCode.USAGE, '--id takes 1 to 256 printable characters, no spaces');
  }
  // What the agent prints quotes servers (their errors, the addresses they announce): each line is one line, of bounded
  // length, with control characters escaped, whatever a server sent.
  const say = (line: string): void => void process.stdout.write(`${oneLine(line)}\n`);
  const agent = new Agent({ ...AGENT_DEFAULTS, servers, envs, token, ...(id === undefined ? {} : { id }), ...(tls === undefined ? {} : { tls }) }, store, {
    connected: (server, afterMs) => say(`agent connected to ${server}${afterMs === undefined ? '' : ` after ${seconds(afterMs)} without a server`}`),
    unreachable: (report) => say(`${unreachableLine(report)}; serving reads from ${store.dir}`),
    disconnected: (reason) => say(`agent disconnected: ${reason}; serving reads from ${store.dir}`),
    throttled: (server, retryMs, message) => say(`agent: ${server} throttles its login (${message}); trying again in ${(retryMs / 1000).toFixed(1)} s`),
    forked: (env, detail) => say(`agent: fork in ${env}: ${detail}`),
    unended: (detail) => say(`agent: ${detail}`),
    fatal: (err) => {
      process.stderr.write(`vitefa agent: ${oneLine(err.message)}\n`);
      void store.close().finally(() => process.exit(1));
    },
  });
  const following = envs.length === 0 ? 'all environments' : envs.join(', ');
  const learned = agent.learnedServers;
  const remembered = learned === 0 ? '' : ` and ${learned} server${learned === 1 ? '' : 's'} the cluster announced before`;
  process.stdout.write(`vitefa agent writing ${store.dir}, following ${following} from ${servers.map((s) => `${s.host}:${s.port}`).join(', ')}${remembered}\n`);
  agent.start();
  const stop = (): void => {
    void agent.stop().then(() => store.close()).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** The line an agent prints when it reaches no server: how long, every address tried, the last error. */
export function unreachableLine(report: OutageReport): string {
  const more = report.more === 0 ? '' : ` and ${report.more} more`;
  const error = report.lastError === undefined ? 'no answer yet' : `last error: ${report.lastError}`;
  const tried = report.tried.length === 0 ? 'no connection attempted yet (a move or a backoff is under way)' : `tried ${report.tried.join(', ')}${more}`;
  return `agent reached no server for ${seconds(report.forMs)}: ${tried}; ${error}`;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** `text` as one line for a log: control characters escaped as everywhere (printable), at most 2,000 characters. */
export function oneLine(text: string): string {
  const escaped = printable(text.length > 2000 ? text.slice(0, 2000) : text);
  return text.length > 2000 ? `${escaped}… (${text.length - 2000} more characters)` : escaped;
}

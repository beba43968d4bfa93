import { LocalErrorCode, ProtocolError, RemoteError, VitefaError, WireError } from '../protocol/index.js';
import { endpointText, parseEndpoint, type Endpoint } from '../transport/client.js';
import type { AdminClient } from './client.js';

/**
 * `--server HOST:PORT[,HOST:PORT…]` (or VITEFA_SERVER): the servers to try,
 * in order of preference; an address given twice counts once.
 */
export function parseServers(text: string): Endpoint[] {
  const parts = text.split(',').map((part) => part.trim());
  if (parts.some((part) => part === '')) {
    throw new VitefaError(LocalErrorCode.USAGE, `--server takes HOST:PORT, or several separated by commas, got ${JSON.stringify(text)}`);
  }
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const part of parts) {
    const endpoint = parseEndpoint(part);
    const key = endpointText(endpoint);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(endpoint);
  }
  return out;
}

/** Opens a session with one server (AdminClient.connect with the login, TLS and timeouts of this run). */
export type ConnectTo = (at: Endpoint) => Promise<AdminClient>;

/**
 * A connect failure that says the same of every server (the account or its
 * password refused, or a server unable to prove it holds the account): the
 * next server would be asked in vain, and asking it feeds its login throttle.
 */
function refusesEverywhere(err: unknown): boolean {
  return (err instanceof RemoteError || err instanceof ProtocolError) && err.status === WireError.AUTH_FAILED;
}

/**
 * The servers one admin run may use: those given, in order, then the others
 * the servers' hellos named (their peers), each once. Entries are only ever
 * appended, so an index stays valid.
 */
export class ServerList {
  private readonly list: Endpoint[] = [];
  private readonly keys = new Set<string>();

  constructor(given: readonly Endpoint[]) {
    for (const endpoint of given) this.add(endpoint);
  }

  get endpoints(): readonly Endpoint[] {
    return this.list;
  }

  /** Adds the servers a hello named (HOST:PORT); one that does not parse is left out. */
  learn(addrs: readonly string[]): void {
    for (const addr of addrs) {
      try {
        this.add(parseEndpoint(addr));
      } catch {
        // A peer's address this client cannot use; the others still can be.
      }
    }
  }

  /**
   * A session with the first server, from `from` on (and round to the ones
   * before it), that takes one. A server that cannot be reached, is slow to
   * answer, or refuses the connection (stopping, full, another protocol
   * version) is passed over; a refused login ends the search. With every
   * server failing, one error names each address and why; with one server,
   * its own error.
   */
  async connect(connectTo: ConnectTo, from = 0): Promise<{ client: AdminClient; index: number }> {
    const failures: { at: string; err: unknown }[] = [];
    const count = this.list.length;
    for (let i = 0; i < count; i++) {
      const index = (from + i) % count;
      const at = this.list[index];
      try {
        const client = await connectTo(at);
        this.learn(client.peers);
        return { client, index };
      } catch (err) {
        if (refusesEverywhere(err)) throw err;
        failures.push({ at: endpointText(at), err });
      }
    }
    throw unreachable(failures);
  }

  private add(endpoint: Endpoint): void {
    const key = endpointText(endpoint);
    if (this.keys.has(key)) return;
    this.keys.add(key);
    this.list.push(endpoint);
  }
}

/** Every server failed: one line naming each address tried and what it said (exit status 1). */
function unreachable(failures: { at: string; err: unknown }[]): unknown {
  if (failures.length === 1) return failures[0].err;
  const timedOut = failures.every(({ err }) => err instanceof VitefaError && err.code === LocalErrorCode.CONNECT_TIMEOUT);
  const reasons = failures.map(({ at, err }) => {
    const message = err instanceof Error ? err.message : String(err);
    return message.includes(at) ? message : `${at}: ${message}`;
  });
  return new VitefaError(
    timedOut ? LocalErrorCode.CONNECT_TIMEOUT : LocalErrorCode.CONNECTION_CLOSED,
    `no server took the connection (tried ${failures.map((f) => f.at).join(', ')}): ${reasons.join('; ')}`,
    { cause: failures[failures.length - 1].err },
  );
}

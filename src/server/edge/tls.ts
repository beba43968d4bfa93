import { createHash } from 'node:crypto';
import tls from 'node:tls';
import { LocalErrorCode, VitefaError } from '../../protocol/index.js';
import { readPem } from '../../security/tls.js';
import type { Store } from '../store/types.js';

/** Where a server's TLS files are (read at start and again on SIGHUP). */
export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** With it, clients must present a certificate signed by this authority (mutual TLS). */
  clientCa?: string;
}

/** The TLS material a server listens with; the ticket keys survive reloads, and are shared by every server of a store. */
export interface ServerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  /** 48 bytes: session tickets any server of the cluster can resume. */
  ticketKeys: Buffer;
}

/** Handshakes that do not finish in this time are dropped (Node's default, 120 s, is far too long in a storm). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Reads and checks the files: a certificate and key that do not match, or a bad file, is one clear error. */
export function readServerTls(files: ServerTlsFiles, ticketKeys: Buffer): ServerTlsMaterial {
  const material: ServerTlsMaterial = {
    cert: readPem(files.cert, 'certificate'),
    key: readPem(files.key, 'key'),
    ...(files.clientCa === undefined ? {} : { clientCa: readPem(files.clientCa, 'client certificate authority') }),
    ticketKeys,
  };
  try {
    tls.createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `TLS files ${files.cert} and ${files.key}${files.clientCa === undefined ? '' : ` and ${files.clientCa}`} cannot be used: ${(err as Error).message}`);
  }
  return material;
}

/**
 * The same on every server of a store, or sessions would not resume across
 * them: Node's default is a hash of the command line, which differs between
 * servers (their --listen). Servers that check client certificates against
 * another authority have another context, so a session made under one set
 * of rules is not resumed under another.
 */
export function sessionIdContext(m: ServerTlsMaterial): string {
  const hash = createHash('sha256').update('vitefa-config session context\0');
  if (m.clientCa !== undefined) hash.update(m.clientCa);
  return hash.digest('hex').slice(0, 32);
}

export function secureContextOptions(m: ServerTlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, minVersion: 'TLSv1.2', sessionIdContext: sessionIdContext(m), ...(m.clientCa === undefined ? {} : { ca: m.clientCa }) };
}

/** The options of a TLS listener: TLS 1.3 preferred (1.2 the least), a short handshake time, shared ticket keys. */
export function serverOptions(m: ServerTlsMaterial): tls.TlsOptions {
  return {
    ...secureContextOptions(m),
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    ticketKeys: m.ticketKeys,
    requestCert: m.clientCa !== undefined,
    rejectUnauthorized: m.clientCa !== undefined,
  };
}

/** The session-ticket keys of every server of this store: an agent that fails over resumes its TLS session. */
export function ticketKeys(store: Store): Promise<Buffer> {
  return store.access.secret('tls-ticket-keys', 48);
}

import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';

/** The label of the TLS keying material both sides of a login sign (RFC 5705 exporter). */
export const CHANNEL_BINDING_LABEL = 'EXPORTER-vitefa-scram-channel-binding';

/**
 * What both sides of a login sign over TLS (base64 of 32 bytes of keying
 * material of this TLS session), so that a login cannot be relayed through
 * another session; '' on a connection without TLS. Client and server alike.
 */
export function channelBinding(socket: Duplex): string {
  return socket instanceof tls.TLSSocket ? socket.exportKeyingMaterial(32, CHANNEL_BINDING_LABEL, Buffer.alloc(0)).toString('base64') : '';
}

export interface ClientTlsFiles {
  /** The certificate authority that signed the server's certificate. */
  ca?: string;
  /** A client certificate and key, for a server that requires them (mutual TLS). */
  cert?: string;
  key?: string;
}

export function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * TLS options for an agent or admin client, or undefined for plaintext. With
 * a CA the server's certificate is checked against it (and its name against
 * the address connected to); TLS 1.3 is preferred, 1.2 the least taken.
 */
export function clientTls(files: ClientTlsFiles): tls.ConnectionOptions | undefined {
  if (files.ca === undefined && files.cert === undefined) return undefined;
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new VitefaError(LocalErrorCode.USAGE, 'a client certificate needs its key: give both --tls-cert and --tls-key');
  }
  return {
    minVersion: 'TLSv1.2',
    ...(files.ca === undefined ? {} : { ca: readPem(files.ca, 'certificate authority') }),
    ...(files.cert === undefined ? {} : { cert: readPem(files.cert, 'certificate'), key: readPem(files.key!, 'key') }),
  };
}

import type net from 'node:net';
import type tls from 'node:tls';

/**
 * Names the client of every TLS handshake that fails on a listener.
 *
 * Node hands `tlsClientError` the TLS socket, whose address is gone once its
 * TCP connection has closed: a client that hangs up during the handshake (a
 * plaintext client giving up, a scanner) arrives as ECONNRESET from
 * `undefined:undefined`. Node offers no public way from that TLS socket back
 * to the TCP socket it wraps, so the address is taken when the TCP
 * connection arrives, and kept until the handshake ends: a failure whose TLS
 * socket still knows its address is reported at once (`failed`); one that no
 * longer does is reported when its TCP socket closes, under the address taken
 * on arrival. A TLS socket knows its address for as long as the connection is
 * open, and the TCP socket closes only with the connection, so each failure
 * is reported once.
 */
export class TlsHandshakes {
  /** Handshakes under way, by the client's address. */
  private readonly open = new Set<string>();
  private readonly report: (addr: string, reason: string) => void;

  /**
   * Watches `server`: call after the server's own 'connection' listeners,
   * so that a connection they refused (destroyed) is not watched.
   */
  constructor(server: tls.Server, report: (addr: string, reason: string) => void) {
    this.report = report;
    server.on('connection', (raw: net.Socket) => this.arrived(raw));
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.open.delete(addressOf(socket) ?? '');
    });
  }

  /** From the server's tlsClientError listener: reports the failure, now or when its connection closes. */
  failed(err: Error & { code?: string }, socket: tls.TLSSocket): void {
    const addr = addressOf(socket);
    if (addr === undefined) return; // the connection has closed: reported when its TCP socket says so
    this.open.delete(addr);
    this.report(addr, err.code ?? err.message);
  }

  private arrived(raw: net.Socket): void {
    if (raw.destroyed || raw.remoteAddress === undefined) return;
    const addr = `${raw.remoteAddress}:${raw.remotePort}`;
    this.open.add(addr);
    raw.once('close', () => {
      if (this.open.delete(addr)) this.report(addr, 'the connection closed before the handshake completed');
    });
  }
}

function addressOf(socket: net.Socket): string | undefined {
  return socket.remoteAddress === undefined ? undefined : `${socket.remoteAddress}:${socket.remotePort}`;
}

import net from 'node:net';
import tls from 'node:tls';
import { WireError } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import type { Endpoint } from '../../transport/client.js';
import type { Admission } from './admission.js';
import type { Refusals } from './refusals.js';
import { secureContextOptions, serverOptions, type ServerTlsMaterial } from './tls.js';
import { TlsHandshakes } from './tls-handshakes.js';

export interface PortListenerOptions {
  endpoints: Endpoint[];
  /** Listen with TLS (certificate, key, client CA for mutual TLS, ticket keys). */
  tls?: ServerTlsMaterial;
  /** Counts TLS handshakes under way with the connections not logged in yet. */
  admission: Admission;
  refusals: Refusals;
  /** A connection ready for the protocol (its TLS handshake, if any, done). */
  accept(socket: net.Socket): void;
  /** Called each time the port listens again after it had stopped. */
  onListening?: (addresses: string[]) => void;
  log: (line: string) => void;
}

/**
 * The listening sockets of one port, plaintext or TLS. A TLS handshake
 * under way counts with the connections not logged in yet (each ends with
 * exactly one of secureConnection or tlsClientError) and takes at most
 * TLS_HANDSHAKE_TIMEOUT_MS; one that fails is named and counted. The port
 * can stop listening and listen again on the addresses it bound first.
 */
export class PortListener {
  private readonly options: PortListenerOptions;
  private readonly listeners: net.Server[] = [];
  private tls: ServerTlsMaterial | undefined;
  /** Where each configured endpoint is bound (port 0 resolved), so listening again takes the same port. */
  private bound: Endpoint[] = [];
  private wantListening = true;
  private listenChange: Promise<void> = Promise.resolve();
  private stopping = false;
  private closed: Promise<void> = Promise.resolve();
  addresses: string[] = [];

  constructor(options: PortListenerOptions) {
    this.options = options;
    this.tls = options.tls;
  }

  async listen(): Promise<void> {
    this.bound = [...this.options.endpoints];
    const first = this.openListeners();
    this.listenChange = first.catch(() => undefined);
    await first;
    this.bound = this.listeners.map((l) => {
      const a = l.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
    this.addresses = this.bound.map((b) => (b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`));
  }

  get isListening(): boolean {
    return this.listeners.length > 0;
  }

  private async openListeners(): Promise<void> {
    for (const endpoint of this.bound) {
      const listener = this.tls === undefined ? net.createServer({ noDelay: true }, (socket) => this.accepted(socket)) : this.tlsListener(this.tls);
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ port: endpoint.port, host: endpoint.host, backlog: 4096 }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      // Accept errors (EMFILE and the like) must not bring the process down.
      listener.on('error', (err: Error) => this.options.refusals.note(`accepting on ${endpoint.host}:${endpoint.port} failed: ${err.message}`));
      this.listeners.push(listener);
    }
  }

  private accepted(socket: net.Socket): void {
    try {
      this.options.accept(socket);
    } catch (err) {
      reportFault('accepting a connection', err);
      socket.destroy();
    }
  }

  /**
   * Listens, or stops listening (a full cluster worker, so that the workers
   * with room win the accepts; the primary keeps one listening). Changes
   * apply in order, after the first listen; listening again binds the
   * addresses bound first (a port 0 stays the port it became), and is
   * retried every second while it fails.
   */
  setListening(on: boolean): void {
    this.wantListening = on;
    this.listenChange = this.listenChange.then(async () => {
      if (this.stopping || this.bound.length === 0) return;
      if (this.wantListening) {
        if (this.listeners.length === 0) {
          await this.openListeners().catch((err: Error) => {
            for (const l of this.listeners.splice(0)) l.close();
            this.options.log(`listening again on ${this.addresses.join(',')} failed: ${err.message}; retrying in 1 s`);
            setTimeout(() => this.setListening(this.wantListening), 1000).unref();
          });
        }
        // Confirmed each time it is asked for (also when it never stopped).
        if (this.listeners.length > 0) this.options.onListening?.(this.addresses);
      } else if (this.listeners.length > 0) {
        // close() stops accepting at once; its callback would wait for every connection it accepted to end.
        for (const l of this.listeners.splice(0)) l.close();
      }
    });
  }

  /** A TLS listener whose handshakes count with the connections not logged in yet. */
  private tlsListener(material: ServerTlsMaterial): tls.Server {
    const { admission, refusals } = this.options;
    const server = tls.createServer(serverOptions(material), (socket) => {
      admission.handshakeEnded();
      this.accepted(socket);
    });
    server.on('connection', (raw: net.Socket) => {
      const refusal = this.stopping ? [WireError.SHUTTING_DOWN, 'the port is closing'] as const : admission.handshakeRefusal();
      if (refusal !== undefined) {
        refusals.count(`${raw.remoteAddress}:${raw.remotePort}`, refusal[0], refusal[1]);
        raw.destroy();
        return;
      }
      admission.handshakeStarted();
    });
    // After the listener above, so that a connection refused there is not named twice.
    const handshakes = new TlsHandshakes(server, (addr, reason) => refusals.count(addr, WireError.MALFORMED, `TLS handshake failed: ${reason}`));
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      admission.handshakeEnded();
      handshakes.failed(err, socket);
      // With a listener here Node leaves the socket open (a timed-out handshake would keep its descriptor for good).
      socket.destroy();
    });
    return server;
  }

  /** New certificates (SIGHUP): new connections get them; connected sessions go on; the ticket keys stay, so sessions resume. */
  setTls(material: ServerTlsMaterial): void {
    const before = this.tls;
    this.tls = material;
    if (before === undefined) return; // before the first listen: it listens with TLS
    for (const listener of this.listeners) {
      const server = listener as tls.Server;
      server.setSecureContext(secureContextOptions(material));
      // setSecureContext drops the ticket keys: without them agents would pay a full handshake again.
      server.setTicketKeys(material.ticketKeys);
    }
  }

  /** Stops accepting (after any change of listening under way); `whenClosed` then waits for the listeners to close. */
  async stopAccepting(): Promise<void> {
    this.stopping = true;
    await this.listenChange;
    this.closed = Promise.all(this.listeners.splice(0).map((l) => new Promise<void>((resolve) => l.close(() => resolve())))).then(() => undefined);
  }

  /** Resolves once every listener has closed (each waits for the connections it accepted to end). */
  whenClosed(): Promise<void> {
    return this.closed;
  }
}

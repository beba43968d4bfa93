import net from 'node:net';
import { hostname } from 'node:os';
import tls from 'node:tls';
import { clientProof, newNonce, sameSignature, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS } from '../security/scram.js';
import { channelBinding } from '../security/tls.js';
import { TOKEN_ITERATIONS } from '../security/token.js';
import {
  LocalErrorCode, MessageType, PROTOCOL_VERSION, ProtocolError, RemoteError, Role, VitefaError, WireError,
  type Hello, type Message, type StoreCheck, type Welcome,
} from '../protocol/index.js';
import { FramedConnection, type ReceiveLimits } from './connection.js';
import { DEFAULT_DECODE_LIMITS } from '../protocol/index.js';

/**
 * What a client (agent or admin) accepts from a server: snapshots are single
 * frames, so frames are large; values and nesting are bounded as everywhere.
 */
export const CLIENT_RECEIVE_LIMITS: ReceiveLimits = {
  maxFrameBytes: 256 * 1024 * 1024,
  replyBufferBytes: 1024 * 1024,
  // A diff or list of an environment at its 1,000,000-key limit holds 4 values a key.
  maxElements: 16_000_000,
  maxDepth: DEFAULT_DECODE_LIMITS.maxDepth,
};

/** What a client accepts from a server before the login has proven it: a hello with its peer list, a challenge. */
const BEFORE_LOGIN_LIMITS: ReceiveLimits = {
  maxFrameBytes: 256 * 1024,
  replyBufferBytes: 64 * 1024,
  maxElements: 4096,
  maxDepth: 8,
};

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses HOST:PORT (IPv6 as [addr]:port). */
export function parseEndpoint(text: string): Endpoint {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new VitefaError(LocalErrorCode.USAGE, `invalid address ${JSON.stringify(text)}: expected HOST:PORT`);
  }
  return { host: match[1] ?? match[2], port };
}

/** HOST:PORT of an endpoint (IPv6 in brackets): the inverse of parseEndpoint. */
export function endpointText(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export interface ClientHandlers {
  message(message: Message): void | Promise<void>;
  closed(reason: string): void;
}

/** The client side of a session (agent or admin), live once it has logged in. */
export class ClientConnection extends FramedConnection {
  serverHello?: Hello;
  /** The server's Welcome: the account (or token) this session acts for, its role and grants. */
  welcome?: Welcome;
  private readonly handlers: ClientHandlers;

  constructor(socket: net.Socket, limits: ReceiveLimits, handlers: ClientHandlers) {
    super(socket, limits);
    this.handlers = handlers;
  }

  protected handle(message: Message): void | Promise<void> {
    return this.handlers.message(message);
  }

  protected onClosed(reason: string): void {
    this.handlers.closed(reason);
  }
}

/** Who logs in: an account and its password, or an agent token's id and secret. */
export interface Login {
  user: string;
  secret: string;
}

export interface ConnectOptions extends Endpoint {
  role: Role;
  id?: string;
  login: Login;
  /** TLS to the server (verifying its certificate); plaintext when absent. */
  tls?: tls.ConnectionOptions;
  /** A TLS session ticket the server issued, to resume next time (skipping the full handshake). */
  onTlsSession?: (session: Buffer) => void;
  /** Time allowed for TCP connect, TLS, the server's hello and the login. */
  timeoutMs: number;
  limits?: ReceiveLimits;
  /**
   * Peer links: the peer port asks, after the proof and before its Welcome,
   * for a proof that this server reads the same store (StoreCheck); the
   * answer is the MAC to send. Throwing refuses the other server.
   */
  onStoreCheck?: (check: StoreCheck) => Promise<string>;
  /**
   * The server throttles this login (too many failures) and asks to be
   * tried again after `retryMs`: called before connect waits and tries again
   * by itself, when that fits within `timeoutMs`. Otherwise connect fails
   * with the server's RemoteError(THROTTLED), whose retryMs says how long.
   */
  onThrottled?: (retryMs: number, message: string) => void;
  /** Messages after the login. */
  onMessage: (message: Message) => void | Promise<void>;
  onClose: (reason: string) => void;
}

/** Time a login still needs after a throttled wait (the admin's password derivation, a round trip or two). */
const LOGIN_AFTER_WAIT_MS = 1000;

/**
 * Connects, checks the server's hello and logs in (SCRAM: the secret never
 * crosses the wire, and the server proves it holds the verifier too). The
 * connection counts as live only once the server's Welcome has arrived and
 * its signature checked: when the server's accept queue overflows, TCP
 * connect succeeds but no hello ever comes, and the timeout turns that into
 * a retry. A login the server throttles is tried again after the wait it
 * names, when that fits within the time allowed (see onThrottled).
 */
export async function connect(options: ConnectOptions): Promise<ClientConnection> {
  const deadline = Date.now() + options.timeoutMs;
  for (let first = true; ; first = false) {
    try {
      return await connectOnce(options, first ? options.timeoutMs : Math.max(1, deadline - Date.now()));
    } catch (err) {
      if (!(err instanceof RemoteError) || err.status !== WireError.THROTTLED || err.retryMs === undefined) throw err;
      const wait = err.retryMs;
      if (Date.now() + wait + LOGIN_AFTER_WAIT_MS > deadline) throw err;
      options.onThrottled?.(wait, err.message);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

function connectOnce(options: ConnectOptions, timeoutMs: number): Promise<ClientConnection> {
  return new Promise((resolve, reject) => {
    const socket = options.tls === undefined
      ? net.connect({ host: options.host, port: options.port, noDelay: true })
      : tls.connect({ host: options.host, port: options.port, servername: net.isIP(options.host) ? undefined : options.host, ...options.tls });
    if (options.onTlsSession !== undefined && socket instanceof tls.TLSSocket) socket.on('session', options.onTlsSession);
    let settled = false;
    let connected = false;
    let step: 'hello' | 'challenge' | 'welcome' = 'hello';
    const clientNonce = newNonce();
    let expected = '';
    const where = `${options.host}:${options.port}`;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        conn.destroy(err.message);
        reject(err);
      } else {
        connected = true;
        resolve(conn);
      }
    };
    const timer = setTimeout(() => {
      const hint = step === 'hello' && options.tls === undefined ? ' (if the server speaks TLS, give its certificate authority: --tls-ca)' : '';
      settle(new VitefaError(LocalErrorCode.CONNECT_TIMEOUT, `no ${step} from ${where} within ${options.timeoutMs} ms${hint}`));
    }, timeoutMs);
    // Until the server has proven itself (its signature in the Welcome), it may send little: a hello, a challenge.
    const conn = new ClientConnection(socket, BEFORE_LOGIN_LIMITS, {
      message: (message): void | Promise<void> => {
        if (settled) return options.onMessage(message);
        if (message.t === MessageType.Error) {
          settle(new RemoteError(message.code, message.msg, message.retry));
          return undefined;
        }
        switch (step) {
          case 'hello': {
            if (message.t !== MessageType.Hello) {
              throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `expected the server's hello, got message type ${message.t}`);
            }
            if (message.v !== PROTOCOL_VERSION) {
              conn.fail(WireError.VERSION_MISMATCH, `protocol version ${message.v} is not supported (client speaks ${PROTOCOL_VERSION})`);
              settle(new ProtocolError(WireError.VERSION_MISMATCH, `server speaks protocol ${message.v}, this client ${PROTOCOL_VERSION}`));
              return undefined;
            }
            conn.serverHello = message;
            conn.send({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: options.role, id: options.id ?? hostname(), user: options.login.user, nonce: clientNonce });
            step = 'challenge';
            return undefined;
          }
          case 'challenge': {
            if (message.t !== MessageType.Challenge) {
              throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `expected the login challenge, got message type ${message.t}`);
            }
            const most = options.role === Role.agent ? TOKEN_ITERATIONS : SCRAM_MAX_ITERATIONS;
            // A person's password is never answered at fewer iterations than any server stores: a server (or whoever
            // answers in its place) asking for 1 would get a proof it can test guesses against at no cost.
            const least = options.role === Role.admin ? SCRAM_MIN_ITERATIONS : 1;
            if (!message.nonce.startsWith(clientNonce) || message.nonce.length <= clientNonce.length || message.iterations < least || message.iterations > most) {
              throw new ProtocolError(WireError.AUTH_FAILED, `the server's login challenge is not acceptable (iterations ${message.iterations})`);
            }
            const { proof, expectedSignature } = clientProof(options.login.secret, {
              role: options.role, user: options.login.user, clientNonce, nonce: message.nonce, salt: message.salt, iterations: message.iterations, channelBinding: channelBinding(socket),
            });
            expected = expectedSignature;
            conn.send({ t: MessageType.Proof, proof });
            step = 'welcome';
            return undefined;
          }
          case 'welcome': {
            if (message.t === MessageType.StoreCheck && options.onStoreCheck !== undefined) {
              // Reading waits while the store is asked: the Welcome comes after the answer.
              return options.onStoreCheck(message).then((mac) => conn.send({ t: MessageType.StoreProof, mac }));
            }
            if (message.t !== MessageType.Welcome) {
              throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `expected the login's welcome, got message type ${message.t}`);
            }
            if (!sameSignature(message.signature, expected)) {
              // Only a server that holds the verifier can sign: this one does not.
              throw new ProtocolError(WireError.AUTH_FAILED, `${where} could not prove it knows the credentials: not the server it claims to be`);
            }
            conn.welcome = message;
            conn.setLimits(options.limits ?? CLIENT_RECEIVE_LIMITS);
            settle();
            return undefined;
          }
          default: {
            const unknown: never = step;
            throw new Error(`unknown login step ${String(unknown)}`);
          }
        }
      },
      closed: (reason) => {
        if (!settled) {
          const notTls = options.tls !== undefined && /wrong version number|packet length too long|unknown protocol/i.test(reason);
          settle(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, notTls
            ? `${where} does not speak TLS (connect without --tls-ca): ${reason}`
            : `connection to ${where} closed before the login completed: ${reason}`));
        } else if (connected) {
          // Only a session that was handed out reports its end: a failed connect has rejected already.
          options.onClose(reason);
        }
      },
    });
  });
}

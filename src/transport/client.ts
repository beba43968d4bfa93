import net from 'node:net';
import { hostname } from 'node:os';
import {
  LocalErrorCode, MessageType, PROTOCOL_VERSION, ProtocolError, RemoteError, VitefaError, WireError,
  type Hello, type Message, type Role,
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
  return { host: match[1] ?? match[2]!, port };
}

export interface ClientHandlers {
  message(message: Message): void | Promise<void>;
  closed(reason: string): void;
}

/** The client side of a session (agent or admin), live once the server's hello has arrived. */
export class ClientConnection extends FramedConnection {
  serverHello?: Hello;
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

export interface ConnectOptions extends Endpoint {
  role: Role;
  id?: string;
  token?: string;
  /** Time allowed for TCP connect plus the server's hello. */
  timeoutMs: number;
  limits?: ReceiveLimits;
  /** Messages after the handshake. */
  onMessage: (message: Message) => void | Promise<void>;
  onClose: (reason: string) => void;
}

/**
 * Connects and completes the handshake. The connection counts as live only
 * once the server's hello has arrived: when the server's accept queue
 * overflows, TCP connect succeeds but no hello ever comes, and the timeout
 * turns that into a retry.
 */
export function connect(options: ConnectOptions): Promise<ClientConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: options.host, port: options.port, noDelay: true });
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        conn.destroy(err.message);
        reject(err);
      } else {
        resolve(conn);
      }
    };
    const timer = setTimeout(() => {
      settle(new VitefaError(LocalErrorCode.CONNECT_TIMEOUT, `no hello from ${options.host}:${options.port} within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const conn = new ClientConnection(socket, options.limits ?? CLIENT_RECEIVE_LIMITS, {
      message: (message) => {
        if (settled) return options.onMessage(message);
        if (message.t === MessageType.Error) {
          settle(new RemoteError(message.code, message.msg));
          return undefined;
        }
        if (message.t !== MessageType.Hello) {
          throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `expected the server's hello, got message type ${message.t}`);
        }
        if (message.v !== PROTOCOL_VERSION) {
          conn.fail(WireError.VERSION_MISMATCH, `protocol version ${message.v} is not supported (client speaks ${PROTOCOL_VERSION})`);
          settle(new ProtocolError(WireError.VERSION_MISMATCH, `server speaks protocol ${message.v}, this client ${PROTOCOL_VERSION}`));
          return undefined;
        }
        conn.serverHello = message;
        const hello: Hello = { t: MessageType.Hello, v: PROTOCOL_VERSION, role: options.role, id: options.id ?? hostname() };
        if (options.token !== undefined) hello.token = options.token;
        conn.send(hello);
        settle();
        return undefined;
      },
      closed: (reason) => {
        if (!settled) {
          settle(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection to ${options.host}:${options.port} closed before the hello: ${reason}`));
        } else {
          options.onClose(reason);
        }
      },
    });
  });
}

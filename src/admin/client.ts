import {
  checkResult, LocalErrorCode, MessageType, RemoteError, VitefaError, WireError,
  type AdminRequest, type Message, type ResultOf,
} from '../protocol/index.js';
import { connect, type ClientConnection, type Endpoint } from '../transport/client.js';

interface Pending {
  op: AdminRequest['op'];
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface AdminClientOptions extends Endpoint {
  token?: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * An admin session: requests carry ids and are matched to their answers;
 * each has a timeout. Errors sent by the server arrive as RemoteError,
 * local failures as VitefaError with a local code.
 */
export class AdminClient {
  private readonly conn: ClientConnection;
  private readonly pending = new Map<number, Pending>();
  private readonly requestTimeoutMs: number;
  private nextId = 1;
  private closedReason: string | undefined;

  private constructor(conn: ClientConnection, requestTimeoutMs: number) {
    this.conn = conn;
    this.requestTimeoutMs = requestTimeoutMs;
  }

  get serverId(): string {
    return this.conn.serverHello?.id ?? '';
  }

  static async connect(options: AdminClientOptions): Promise<AdminClient> {
    let client: AdminClient | undefined;
    const early: Message[] = [];
    const conn = await connect({
      host: options.host,
      port: options.port,
      role: 'admin',
      token: options.token,
      timeoutMs: options.connectTimeoutMs,
      maxFrameBytes: 256 * 1024 * 1024,
      onMessage: (message) => (client ? client.onMessage(message) : void early.push(message)),
      onClose: (reason) => client?.onClose(reason),
    });
    client = new AdminClient(conn, options.requestTimeoutMs);
    for (const message of early) client.onMessage(message);
    return client;
  }

  request<R extends AdminRequest>(req: R): Promise<ResultOf[R['op']]> {
    if (this.closedReason !== undefined || this.conn.isClosed) {
      return Promise.reject(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection closed: ${this.closedReason ?? 'closed'}`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, `${req.op} got no answer within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(id, { op: req.op, resolve: resolve as (v: unknown) => void, reject, timer });
      this.conn.send({ t: MessageType.Request, id, req });
    });
  }

  close(): void {
    this.conn.end('admin done');
  }

  private onMessage(message: Message): void {
    if (message.t === MessageType.Response || (message.t === MessageType.Error && message.id !== undefined)) {
      const id = message.id!;
      const waiting = this.pending.get(id);
      if (waiting === undefined) return;
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      if (message.t === MessageType.Error) {
        waiting.reject(new RemoteError(message.code, message.msg));
        return;
      }
      try {
        waiting.resolve(checkResult(waiting.op, message.res));
      } catch (err) {
        waiting.reject(err as Error);
      }
      return;
    }
    if (message.t === MessageType.Error) {
      this.onClose(`server ended the session: ${message.msg}`, new RemoteError(message.code, message.msg));
      return;
    }
    if (message.t === MessageType.Ping) {
      this.conn.send({ t: MessageType.Pong, n: message.n });
      return;
    }
    if (message.t !== MessageType.Pong) {
      this.conn.fail(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to an admin client`);
    }
  }

  private onClose(reason: string, cause?: Error): void {
    this.closedReason ??= reason;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(cause ?? new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection closed before ${waiting.op} was answered: ${reason}`));
      this.pending.delete(id);
    }
  }
}

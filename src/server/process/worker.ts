import { decodeOwn, FRAME_HEADER_BYTES, MessageType, WireError } from '../../protocol/index.js';
import { CredentialBook } from '../access/book.js';
import type { LoginContext } from '../access/login.js';
import type { Admission, LoginGate } from '../access/throttle.js';
import { ConnectionHost, type HostStatus } from '../edge/host.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import { RequestError } from '../errors.js';
import { ServerState } from '../releases/state.js';
import type { AuditRecord } from '../store/types.js';
import { Channel, type ChannelPort } from './channel.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import type { PrimaryNote, PrimaryRequest, Replies, WorkerNote, WorkerRequest, WorkerSetup } from './ipc.js';
import { promised } from '../../promised.js';

type WorkerChannel = Channel<WorkerNote, WorkerRequest, PrimaryNote, PrimaryRequest, Pick<Replies, 'admin' | 'login'>>;

/** A worker waits this long for the primary's throttle; then the login is told to try again (well within a client's deadline). */
const LOGIN_IPC_TIMEOUT_MS = 2000;
/** Failed logins waiting to go to the primary's audit trail, at most. */
const AUDIT_BATCH_MAX = 10_000;
const AUDIT_BATCH_MS = 200;

/**
 * A cluster worker: holds a replica of the state fed by the primary, accepts
 * connections, serves agents, and sends admin requests to the primary. It
 * does what the primary's notes say (notes) and answers its questions
 * (request); runWorker ties it to this process.
 */
export class ClusterWorker {
  private readonly channel: WorkerChannel;
  private state: ServerState | undefined;
  private host: ConnectionHost | undefined;
  private book = CredentialBook.empty();
  private readonly audits: AuditRecord[] = [];
  private auditTimer: NodeJS.Timeout | undefined;

  constructor(port: ChannelPort, leave: (code: number, why?: string) => void) {
    this.channel = new Channel(port, {
      name: 'worker',
      maxPending: 4096,
      maxQueuedBytes: 256 * 1024 * 1024,
      overflow: () => leave(1, 'the primary is not taking messages; leaving'),
      note: (note) => this.note(note, leave),
      request: (request) => this.request(request),
    });
  }

  get connections(): number {
    return this.host?.connections ?? 0;
  }

  receive(message: unknown): void {
    this.channel.receive(message);
  }

  /** Tells the primary its message handler is in place (ESM workers load asynchronously). */
  ready(): void {
    this.channel.notify({ k: 'ready' });
  }

  /** Answers through a promise even when a part throws, so that the primary gets an error rather than no answer. */
  private request(request: PrimaryRequest): Promise<unknown> {
    return promised(() => {
      switch (request.k) {
        case 'status':
          return this.host?.status(request.env, request.max, request.agent) ?? ({ agentsTotal: 0, agents: [], counters: {} } satisfies HostStatus);
        case 'revisions':
          return this.host?.revisions(request.env, request.cap) ?? [];
        default: {
          const unknown: never = request;
          throw new RequestError(WireError.BAD_REQUEST, `unknown request ${JSON.stringify(unknown)}`);
        }
      }
    });
  }

  private note(note: PrimaryNote, leave: (code: number, why?: string) => void): void {
    const host = this.host;
    switch (note.k) {
      case 'init':
        this.init(note, leave);
        return;
      case 'release': {
        // Every release of the note is published in this one run of the event loop: a group goes out in one pass.
        for (const sent of note.frames) {
          const frame = Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength);
          // Encoded by the primary of this very server (checked as it arrived, or made there): decoded unchecked.
          const message = decodeOwn(frame.subarray(FRAME_HEADER_BYTES));
          if (message.t !== MessageType.Release) throw new Error(`the primary sent message type ${message.t} as a release`);
          // Its changes are read from the message itself (the stored form would copy every one of them).
          for (const published of this.state?.apply({ ...message, changes: [] }, { message, frame }) ?? []) host?.publish(published);
        }
        return;
      }
      case 'listen':
        host?.setListening(note.on);
        return;
      case 'peers':
        host?.setPeers(note.servers);
        return;
      case 'move':
        host?.move(note.count, note.to, note.within, note.reason);
        return;
      case 'storeRead':
        host?.storeRead(note.at);
        return;
      case 'credentials':
        this.book = new CredentialBook(note.credentials);
        host?.credentialsChanged(this.book);
        return;
      case 'tls':
        host?.setTls(reviveTls(note.material));
        return;
      case 'stop':
        void (host?.stop(note.mode) ?? Promise.resolve()).then(() => leave(0));
        return;
      default: {
        const unknown: never = note;
        throw new Error(`unknown note from the primary: ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** The initial state and configuration: the replica is loaded and the host listens. */
  private init(note: Extract<PrimaryNote, { k: 'init' }>, leave: (code: number, why?: string) => void): void {
    const { setup } = note;
    const channel = this.channel;
    channel.maxPending = setup.limits.workerRequests;
    const state = new ServerState(setup.limits);
    state.load(note.head, note.envs);
    this.state = state;
    this.book = new CredentialBook(note.credentials);
    const host = new ConnectionHost(
      {
        serverId: setup.serverId,
        ...(setup.processes === undefined ? {} : { processes: setup.processes }),
        listen: setup.listen,
        maxAgents: setup.maxAgents,
        limits: setup.limits,
        login: this.login(setup),
        ...(setup.tls === undefined ? {} : { tls: reviveTls(setup.tls) }),
        onCapacity: (full) => channel.notify({ k: 'capacity', full }),
        onListening: (addresses) => channel.notify({ k: 'listening', addresses }),
        onAgents: (count) => channel.notify({ k: 'agents', count }),
        ...(setup.shared ? { onBehind: (rev: number) => channel.notify({ k: 'behind', rev }) } : {}),
      },
      state,
      {
        execute: (req, caller) => channel.request({ k: 'admin', req, caller }, setup.limits.workerRequestTimeoutMs),
      },
    );
    this.host = host;
    host.listen().then(
      () => channel.notify({ k: 'listening', addresses: host.addresses }),
      (err: Error) => leave(1, err.message),
    );
  }

  /** Logins here check the credentials the primary sent, ask the primary's throttle, and audit through it in batches. */
  private login(setup: WorkerSetup): LoginContext {
    return {
      book: () => this.book,
      decoySecret: Buffer.from(setup.decoySecret),
      passwordIterations: setup.passwordIterations,
      throttle: primaryThrottle(this.channel),
      audit: (record) => {
        // Batched: a storm of failed agent logins must not be one IPC message each.
        if (this.audits.length < AUDIT_BATCH_MAX) this.audits.push(record);
        this.auditTimer ??= setTimeout(() => {
          this.auditTimer = undefined;
          this.channel.notify({ k: 'audit', records: this.audits.splice(0) });
        }, AUDIT_BATCH_MS);
      },
    };
  }
}

/** Runs this process as a cluster worker: everything it serves comes from the primary. */
export function runWorker(): void {
  const port: ChannelPort = {
    send: (message, done) => {
      if (process.connected) process.send!(message, undefined, {}, done);
      else done(null);
    },
  };
  const worker = new ClusterWorker(port, (code, why) => {
    if (why !== undefined) process.stderr.write(`vitefa server worker: ${why}\n`);
    process.exit(code);
  });
  process.on('message', (message: unknown) => worker.receive(message));
  reportMemoryOnSignal(() => `worker with ${worker.connections} connections,`);
  // Without the primary there are no releases to serve: leave, agents fail over.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group; the primary decides how workers stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  worker.ready();
}

/**
 * A worker's logins ask the primary's throttle, the one of the whole server:
 * seven workers must not allow seven times the rate. Without an answer in
 * time the attempt is told to try again shortly.
 */
function primaryThrottle(channel: WorkerChannel): LoginGate {
  const unanswered: Admission = { admitted: false, retryMs: 1000, message: 'this server could not ask its login throttle in time: try again in 1 s' };
  return {
    admit: (attempt) => channel.request({ k: 'login', attempt }, LOGIN_IPC_TIMEOUT_MS).catch(() => unanswered),
    settle: (ticket, outcome) => channel.notify({ k: 'settle', ticket, outcome }),
  };
}

/** Buffers arrive over IPC as Uint8Arrays: make them Buffers again. */
function reviveTls(m: ServerTlsMaterial): ServerTlsMaterial {
  return {
    cert: Buffer.from(m.cert), key: Buffer.from(m.key), ticketKeys: Buffer.from(m.ticketKeys),
    ...(m.clientCa === undefined ? {} : { clientCa: Buffer.from(m.clientCa) }),
  };
}

import { WireError } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { Correlator } from '../../transport/correlator.js';
import { RequestError, wireAnswer, type ViolationDetails } from '../errors.js';

/** One end of an IPC link: Node's `worker.send` / `process.send`, reduced to what the channel needs. */
export interface ChannelPort {
  /** Queues `message`; `done` runs once it has been handed to the operating system. */
  send(message: unknown, done: (err: Error | null) => void): void;
}

type Kinded = { k: string };

/** What travels: a one-way note, a request with its id, or the answer to one. */
type Envelope =
  | { n: Kinded }
  | { q: Kinded; id: number }
  | { a: number; ok: true; v: unknown }
  | { a: number; ok: false; status: number; message: string; details?: ViolationDetails };

export interface ChannelOptions<InNote, InRequest> {
  /** Names this end in fault reports ("primary", "worker 3"). */
  name: string;
  /** Requests this end may have waiting for answers. */
  maxPending: number;
  /** Bytes handed to the port and not yet sent on; past this `overflow` is called (once). */
  maxQueuedBytes: number;
  overflow: (queuedBytes: number) => void;
  note: (note: InNote) => void;
  request: (request: InRequest) => Promise<unknown>;
}

/** Estimated bytes of a message with no large payload, for the queue bound. */
const SMALL_MESSAGE_BYTES = 512;

/**
 * The cluster's internal request/response layer, one per primary–worker
 * link: typed one-way notes, requests with a deadline and a bound on how
 * many wait, answers carrying a wire status on failure, and a bound on bytes
 * queued towards the other end (a worker that stops taking its messages is
 * reported through `overflow` rather than growing the sender without end).
 * A handler that throws is reported with its stack and never takes the
 * process down.
 */
export class Channel<OutNote extends Kinded, OutRequest extends Kinded, InNote extends Kinded, InRequest extends Kinded, Reply extends { [K in OutRequest['k']]: unknown }> {
  private readonly port: ChannelPort;
  private readonly options: ChannelOptions<InNote, InRequest>;
  private readonly calls: Correlator<string>;
  private queued = 0;
  private overflowed = false;
  private closed = false;

  constructor(port: ChannelPort, options: ChannelOptions<InNote, InRequest>) {
    this.port = port;
    this.options = options;
    this.calls = new Correlator<string>({
      maxPending: options.maxPending,
      timeout: (kind, ms) => new RequestError(WireError.TIMEOUT, `${kind} got no answer from the ${options.name === 'primary' ? 'worker' : 'primary'} within ${ms} ms`),
      overflow: (kind, max) => new RequestError(WireError.LIMIT_EXCEEDED, `${kind}: ${max} requests already wait on the server's internal channel`),
    });
  }

  /** Requests this end may have waiting (the worker learns its limit from the primary's init). */
  set maxPending(n: number) {
    this.calls.maxPending = n;
  }

  /** Bytes queued towards the other end. */
  get queuedBytes(): number {
    return this.queued;
  }

  notify(note: OutNote, bytes = SMALL_MESSAGE_BYTES): void {
    this.post({ n: note }, bytes);
  }

  request<K extends OutRequest['k']>(request: Extract<OutRequest, { k: K }>, timeoutMs: number): Promise<Reply[K]> {
    if (this.closed) return Promise.reject(new RequestError(WireError.SHUTTING_DOWN, `${request.k}: the server's internal channel is closed`));
    return this.calls.start<Reply[K]>(request.k, timeoutMs, (id) => this.post({ q: request, id }, SMALL_MESSAGE_BYTES));
  }

  /** Feeds a message that arrived from the other end (the port's 'message' event). */
  receive(message: unknown): void {
    try {
      this.dispatch(message as Envelope);
    } catch (err) {
      reportFault(`the ${this.options.name}'s internal channel`, err);
    }
  }

  /** The other end is gone: every waiting request fails. */
  close(reason: string): void {
    this.closed = true;
    this.calls.failAll((kind) => new RequestError(WireError.SHUTTING_DOWN, `${kind}: ${reason}`));
  }

  private dispatch(envelope: Envelope): void {
    if ('n' in envelope) {
      this.options.note(envelope.n as InNote);
    } else if ('q' in envelope) {
      const id = envelope.id;
      this.options.request(envelope.q as InRequest).then(
        (v) => this.post({ a: id, ok: true, v }, SMALL_MESSAGE_BYTES),
        (err: unknown) => {
          const { status, message, fault, details } = wireAnswer(err, `internal error while running ${envelope.q.k}`);
          if (fault) reportFault(`${envelope.q.k} on the ${this.options.name}`, err);
          this.post({ a: id, ok: false, status, message, ...(details === undefined ? {} : { details }) }, SMALL_MESSAGE_BYTES);
        },
      );
    } else if ('a' in envelope) {
      this.calls.settle(envelope.a, () => {
        if (envelope.ok) return envelope.v;
        throw new RequestError(envelope.status as WireError, envelope.message, envelope.details === undefined ? undefined : { details: envelope.details });
      });
    } else {
      throw new Error(`unknown message on the internal channel: ${JSON.stringify(envelope)}`);
    }
  }

  private post(envelope: Envelope, bytes: number): void {
    if (this.closed) return;
    this.queued += bytes;
    if (this.queued > this.options.maxQueuedBytes && !this.overflowed) {
      this.overflowed = true;
      this.options.overflow(this.queued);
    }
    try {
      this.port.send(envelope, () => {
        this.queued -= bytes;
      });
    } catch (err) {
      // The other end is gone (a channel closed under us): its exit is handled elsewhere.
      this.queued -= bytes;
      if (!this.closed) reportFault(`sending on the ${this.options.name}'s internal channel`, err);
    }
  }
}

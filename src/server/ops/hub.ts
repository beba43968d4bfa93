import { WireError, type AdminRequest, type ResultOf } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import { ReleaseLog, type CommitListener, type ReleaseListener } from '../releases/log.js';
import type { ChainBroken, ServerState } from '../releases/state.js';
import type { Store, StoredRelease } from '../store/types.js';
import { ReadGate } from './read-gate.js';
import { ConfigReads, type StatusSource } from './reads.js';
import { checkedHandlers, operation, runHandler, type Handlers, type OpsRunBy, type RequestOf } from './table.js';
import { ConfigWrites, type WriteCall } from './writes.js';
import { SchemaOps } from './schema-ops.js';

export type { CommitListener, ReleaseListener } from '../releases/log.js';
export type { StatusSource } from './reads.js';

/**
 * The configuration's side of the table of operations: the handler of each
 * operation the hub runs (table.ts), and the one way in to them. Built from
 * the release log (releases/log.ts: the store opened, the state loaded,
 * releases applied in order and handed to the fan-out), the write path
 * (writes.ts) and the reads (reads.ts).
 */
export class Hub {
  readonly store: Store;
  readonly state: ServerState;
  private readonly limits: ServerLimits;
  private readonly log: ReleaseLog;
  private readonly writes: ConfigWrites;
  private readonly reads: ConfigReads;
  /** Turns for the reads whose cost grows with the data (the table's `paged` operations). */
  private readonly turns: ReadGate;
  private readonly handlers: Handlers<'hub', WriteCall>;

  constructor(store: Store, state: ServerState, limits: ServerLimits) {
    this.store = store;
    this.state = state;
    this.limits = limits;
    this.log = new ReleaseLog(store, state);
    this.writes = new ConfigWrites(store, state, this.log, limits);
    this.reads = new ConfigReads(store, state, limits);
    this.turns = new ReadGate(limits.readsAtOnce, limits.readsPerAccount, limits.readsWaiting);
    const { writes, reads } = this;
    const schemas = new SchemaOps(store, state, this.log, limits, writes.schemas);
    this.handlers = checkedHandlers('hub', {
      'env.add': (req, call) => writes.addEnv(req, call),
      'env.del': (req, call) => writes.dropEnv(req, call),
      'env.list': () => reads.envList(),
      'env.layers': (req, call) => writes.layers(req, call),
      'env.show': (req, call) => reads.layers.show(req, call.reads ?? (() => true)),
      set: (req, call) => writes.set(req, call),
      get: (req, call) => reads.get(req, call.reads),
      del: (req, call) => writes.del(req, call),
      list: (req) => reads.list(req),
      merge: (req, call) => writes.merge(req, call),
      clear: (req, call) => writes.clear(req, call),
      unset: (req, call) => writes.unset(req, call),
      apply: (req, call) => writes.apply(req, call),
      plan: (req, call) => writes.plan(req, call),
      history: (req, call) => reads.history(req, call.reads),
      diff: (req) => reads.diff(req),
      rollback: (req, call) => writes.rollback(req, call, reads.layers),
      'schema.set': (req, call) => schemas.set(req, call),
      'schema.get': (req) => schemas.get(req),
      'schema.del': (req, call) => schemas.del(req, call),
      'schema.list': (req) => schemas.list(req),
      'schema.history': (req) => schemas.history(req),
      'schema.rollback': (req, call) => schemas.rollback(req, call),
      status: async (req) => {
        const [status, warned] = await Promise.all([reads.status(req), writes.schemas.warnings()]);
        return warned.length === 0 ? status : { ...status, schemaWarnings: warned };
      },
      'status.local': (req) => reads.localStatus(req),
    });
  }

  /**
   * Runs one configuration operation for `author`. A configuration write
   * with a request id (`requestId`) committed before by the same account for
   * the same request is answered with the first one's result, marked
   * `replayed`, and writes nothing (writes.ts). The operations access
   * control runs (accounts, tokens, audit, watches) are refused here.
   */
  async execute<R extends AdminRequest>(req: R, author: string, requestId?: string, reads?: (env: string) => boolean): Promise<ResultOf[R['op']]> {
    const broken = this.log.brokenChain;
    if (broken !== undefined) throw new RequestError(WireError.STORE_MISMATCH, `this server stopped: ${broken.message}`);
    const entry = operation(req.op) as ReturnType<typeof operation> | undefined;
    if (entry?.runBy !== 'hub') throw new RequestError(WireError.BAD_REQUEST, `${req.op} is not a configuration operation`);
    const call: WriteCall = {
      author, deadline: Date.now() + this.limits.writeTimeoutMs, ...(entry.writes && requestId !== undefined ? { requestId } : {}),
      ...(reads === undefined ? {} : { reads }),
    };
    const run = (): Promise<unknown> => Promise.resolve(runHandler(this.handlers, req as RequestOf<OpsRunBy<'hub'>>, call));
    // Reads whose cost grows with the data take turns, per account and in all; everything else goes at once.
    return (await (entry.paged ? this.turns.run(author, run) : run())) as ResultOf[R['op']];
  }

  /** Opens the store and loads the state, waiting for an unreachable database (ReleaseLog.open). */
  open(log?: (line: string) => void): Promise<void> {
    return this.log.open(log);
  }

  /** The safety net that picks up releases committed through other servers, every `intervalMs`. */
  startPolling(intervalMs: number, log?: (line: string) => void): void {
    this.log.startPolling(intervalMs, log);
  }

  async close(): Promise<void> {
    await this.log.stop();
    await this.writes.close();
    await this.store.close();
  }

  onRelease(listener: ReleaseListener): () => void {
    return this.log.onRelease(listener);
  }

  onCommit(listener: CommitListener): () => void {
    return this.log.onCommit(listener);
  }

  /** Told once when a release does not follow this server's history (the process should stop serving). */
  onBroken(listener: (err: ChainBroken) => void): void {
    this.log.onBroken(listener);
  }

  setStatusSource(source: StatusSource): void {
    this.reads.setStatusSource(source);
  }

  /** Every release up to this revision has been applied and published (revisions are contiguous). */
  get applied(): number {
    return this.log.applied;
  }

  /** A release committed through another server, as it told this one (ReleaseLog.learned). */
  learned(release: StoredRelease): Promise<void> {
    return this.log.learned(release);
  }

  /** Another server has applied up to `head`: fetch what this one lacks. */
  catchUp(head: number): Promise<void> {
    return this.log.catchUp(head);
  }

  /** Fetches and publishes the releases committed by other servers after the cursor. */
  pull(): Promise<void> {
    return this.log.pull();
  }

  /** Applies whose keys and values were checked on the bulk pool's thread. */
  get appliesCheckedOnThreads(): number {
    return this.writes.appliesCheckedOnThreads;
  }
}

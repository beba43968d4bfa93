import {
  WireError,
  type AdminRequest, type AdminResult, type BigValue, type Change, type KeyChange, type EnvInfo, type HistoryRelease,
  type LocalStatus, type ResultOf, type StatusResult, type WriteResult,
} from '../../protocol/index.js';
import { envNotFound, RequestError } from '../errors.js';
import { invert, LeftOut, netValues, pageOf, rollbackChanges } from '../releases/history.js';
import { ReadGate } from './read-gate.js';
import { replayRefusal, RequestReplay, requestDigest } from '../store/requests.js';
import { Mutex } from '../store/mutex.js';
import { clearValue, jsonEqual, mergeValue, type Json } from './merge.js';
import { ChainBroken, entryBytes, type PublishedRelease, type ServerState } from '../releases/state.js';
import type { ChangeRef, CommitMeta, Planner, Store, StoredRelease } from '../store/types.js';
import type { ServerLimits } from '../limits.js';
import { checkEnvName, checkKey, parseValue } from './validate.js';
import { BulkPool } from './validate-pool.js';
import { beforeDeadline } from '../../deadline.js';
import { errorText } from '../../error-text.js';

export type ReleaseListener = (release: PublishedRelease, stored: StoredRelease) => void;
/** Told of every release this server commits, before it is applied here (to tell the other servers at once). */
export type CommitListener = (stored: StoredRelease) => void;

/** What the hub reports about the processes and the connected agents for `status`. */
export interface StatusSource {
  /** With `agent`: the agents of that id too, on whichever server holds them. */
  status(env: string | undefined, agent?: string): Promise<Omit<StatusResult, 'envs'>>;
  /** This server alone (what the cluster's `status` gathers from each server). */
  local(env: string | undefined, agent?: string): Promise<LocalStatus>;
}

export const DEFAULT_HISTORY_LIMIT = 50;
const PULL_BATCH = 1000;
/** Releases held for the revisions before them, at most. */
const MAX_WAITING = 10_000;

/**
 * The write path and the admin commands: validates each request, commits it
 * to the store as one release, applies it to the in-memory state and hands
 * the encoded release to every listener (the fan-out to agents).
 */
export class Hub {
  readonly store: Store;
  readonly state: ServerState;
  private readonly listeners = new Set<ReleaseListener>();
  private readonly commitListeners = new Set<CommitListener>();
  private statusSource?: StatusSource;
  private cursor = 0;
  /** Releases this server committed that wait for earlier revisions from other servers. */
  private readonly waiting = new Map<number, StoredRelease>();
  private readonly pulling = new Mutex();
  private queuedPull: Promise<void> | undefined;
  private poller?: NodeJS.Timeout;
  private closed = false;
  private readonly limits: ServerLimits;
  private readonly bulk: BulkPool;
  private readonly reads: ReadGate;
  /** Set when a release did not follow this server's history: nothing more is applied or written. */
  private broken: ChainBroken | undefined;
  private readonly brokenListeners = new Set<(err: ChainBroken) => void>();

  constructor(store: Store, state: ServerState, limits: ServerLimits) {
    this.store = store;
    this.state = state;
    this.limits = limits;
    this.bulk = new BulkPool(limits);
    this.reads = new ReadGate(limits.readsAtOnce, limits.readsPerAccount, limits.readsWaiting);
  }

  /**
   * Opens the store and loads the state. An unreachable database is waited
   * for (retrying with backoff); any other failure is thrown.
   */
  async open(log: (line: string) => void = () => undefined): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.open();
        await this.load();
        return;
      } catch (err) {
        if (!(err instanceof RequestError && err.status === WireError.STORE_UNAVAILABLE) || this.closed) throw err;
        const delay = Math.min(5000, 250 * 2 ** attempt);
        log(`${err.message}; retrying in ${delay} ms`);
        await this.store.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The safety net that picks up releases committed through other servers, every `intervalMs`. */
  startPolling(intervalMs: number, log: (line: string) => void = () => undefined): void {
    let down = false;
    const tick = (): void => {
      this.poller = setTimeout(() => {
        this.pull().then(
          () => {
            if (down) log(`store ${this.store.description} is reachable again`);
            down = false;
          },
          (err: unknown) => {
            if (!down) log(`${errorText(err)}; serving agents from memory until it returns`);
            down = true;
          },
        ).finally(() => {
          if (!this.closed) tick();
        });
      }, intervalMs);
      this.poller.unref();
    };
    tick();
  }

  /** Applies whose keys and values were checked on the bulk pool's thread. */
  get appliesCheckedOnThreads(): number {
    return this.bulk.pooled;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.poller);
    await this.pulling.run(async () => undefined);
    await this.bulk.close();
    await this.store.close();
  }

  private async load(): Promise<void> {
    // Head first: anything committed while the state loads is pulled again (and skipped if already loaded).
    const head = await this.store.head();
    const envs = await this.store.loadAll();
    this.state.load(head, envs);
    this.cursor = head;
  }

  onRelease(listener: ReleaseListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onCommit(listener: CommitListener): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  setStatusSource(source: StatusSource): void {
    this.statusSource = source;
  }

  /** Every release up to this revision has been applied and published (revisions are contiguous). */
  get applied(): number {
    return this.cursor;
  }

  /**
   * Publishes a release this server committed. Releases go out strictly in
   * revision order: when another server committed revisions in between, they
   * are fetched from the store first, so no agent ever gets a release whose
   * predecessor it has not seen.
   */
  async committed(release: StoredRelease): Promise<void> {
    if (release.rev <= this.cursor && this.broken === undefined) {
      // The store allocated a revision this server has already applied: its revision counter went back (a database
      // restored under the running server). What this server holds is not the store's history any more.
      this.breakOff(new ChainBroken(release.env, release.rev, this.state.chain(release.env) ?? '', '(a later revision)', release.chain ?? '',
        `the store committed ${release.env}@${release.rev}, a revision this server had already applied (up to ${this.cursor}): the store's history went back under it`));
      return;
    }
    for (const listener of this.commitListeners) listener(release);
    await this.learned(release);
  }

  /**
   * A release committed through another server, as it told this one: applied
   * at once when it is the next revision, else once the ones before it have
   * been fetched from the store.
   */
  async learned(release: StoredRelease): Promise<void> {
    if (release.rev <= this.cursor) return;
    if (release.rev === this.cursor + 1 && this.waiting.size === 0) {
      this.apply(release);
      return;
    }
    // Held only while the ones before them are fetched; past the bound the store is the only source.
    if (this.waiting.size < MAX_WAITING) this.waiting.set(release.rev, release);
    await this.pull();
  }

  /** Another server has applied up to `head`: fetch what this one lacks. */
  async catchUp(head: number): Promise<void> {
    if (head > this.cursor && !this.closed) await this.pull();
  }

  /**
   * Fetches and publishes releases committed by other servers after the
   * cursor. Serialised; safe to call from a timer and after commits alike.
   */
  pull(): Promise<void> {
    // One read waiting behind the running one is enough: it sees everything the others would.
    if (this.queuedPull !== undefined) return this.queuedPull;
    const queued = this.pulling.run(async () => {
      this.queuedPull = undefined;
      await this.readStore();
    });
    this.queuedPull = queued;
    return queued;
  }

  private async readStore(): Promise<void> {
    for (;;) {
      if (this.broken !== undefined) return;
      while (this.waiting.has(this.cursor + 1)) {
        const next = this.waiting.get(this.cursor + 1)!;
        this.waiting.delete(next.rev);
        this.apply(next);
      }
      const batch = await this.store.releasesSince(this.cursor, PULL_BATCH);
      for (const release of batch) {
        if (release.rev <= this.cursor) continue; // applied meanwhile (a notice from a peer)
        if (release.rev !== this.cursor + 1) break; // pruned or not yet visible: stop at the first hole
        this.waiting.delete(release.rev);
        this.apply(release);
      }
      if (batch.length < PULL_BATCH) break;
    }
  }

  private apply(stored: StoredRelease): void {
    if (this.broken !== undefined) return;
    let published: PublishedRelease | undefined;
    try {
      published = this.state.apply(stored);
    } catch (err) {
      if (!(err instanceof ChainBroken)) throw err;
      this.breakOff(err);
      return;
    }
    this.cursor = stored.rev;
    if (published === undefined) return;
    for (const listener of this.listeners) listener(published, stored);
  }

  /**
   * This server's history and the store's disagree (the database was restored under it, or a peer is not what it
   * claimed): it serves nothing more from a state it cannot trust.
   */
  private breakOff(err: ChainBroken): void {
    if (this.broken !== undefined) return;
    this.broken = err;
    this.waiting.clear();
    for (const listener of this.brokenListeners) listener(err);
  }

  /** Told once when a release does not follow this server's history (the process should stop serving). */
  onBroken(listener: (err: ChainBroken) => void): void {
    this.brokenListeners.add(listener);
  }

  /** Why this server stopped applying releases, when it did. */
  get brokenChain(): ChainBroken | undefined {
    return this.broken;
  }

  /**
   * Runs one admin request. A configuration write with a request id
   * (`requestId`) that was committed before — through this server or any
   * other of the store — by the same account for the same request is
   * answered with the first one's result, marked `replayed`, and writes
   * nothing; this server catches up to that revision first, so a read that
   * follows sees it. The id kept for another request, or by another
   * account, is refused (BAD_REQUEST naming the id).
   */
  async execute<R extends AdminRequest>(req: R, author: string, requestId?: string): Promise<ResultOf[R['op']]> {
    if (this.broken !== undefined) throw new RequestError(WireError.STORE_MISMATCH, `this server stopped: ${this.broken.message}`);
    const deadline = Date.now() + this.limits.writeTimeoutMs;
    try {
      // Reads whose cost grows with the data take turns, per account and in all; everything else goes at once.
      if (req.op === 'list' || req.op === 'history' || req.op === 'diff') {
        return (await this.reads.run(author, () => this.dispatch(req, author, requestId, deadline))) as ResultOf[R['op']];
      }
      return (await this.dispatch(req, author, requestId, deadline)) as ResultOf[R['op']];
    } catch (err) {
      if (!(err instanceof RequestReplay) || requestId === undefined) throw err;
      const { env, rev, changed } = err.record;
      const refused = replayRefusal(err.record, { rid: requestId, author, op: req.op, env: ('env' in req ? req.env : undefined) ?? '', digest: requestDigest(req) });
      if (refused !== undefined) throw new RequestError(WireError.BAD_REQUEST, refused);
      if (rev > this.cursor) await untilDeadline(this.pull(), deadline);
      return { env, rev, changed, replayed: true } as ResultOf[R['op']];
    }
  }

  /** A page of an environment's keys and values, in key order, of at most answerBytes. */
  private listPage(env: string, prefix: string, after: string | undefined): ResultOf['list'] {
    const values = this.liveValues(env);
    const keys = [...values.keys()].filter((k) => k.startsWith(prefix) && (after === undefined || k > after)).sort();
    const entries: [string, string][] = [];
    let used = 0;
    for (const key of keys) {
      const value = values.get(key)!;
      const bytes = Buffer.byteLength(key) + Buffer.byteLength(value);
      if (entries.length > 0 && used + bytes > this.limits.answerBytes) {
        return { env, rev: this.state.rev(env)!, entries, next: entries[entries.length - 1]![0] };
      }
      used += bytes;
      entries.push([key, value]);
    }
    return { env, rev: this.state.rev(env)!, entries };
  }

  /** A page of history: large values by size and hash (whole with `values`, as far as the page's bytes go). */
  private async historyPage(req: Extract<AdminRequest, { op: 'history' }>): Promise<ResultOf['history']> {
    const page = await this.store.historyPage(req.env, {
      ...(req.key === undefined ? {} : { key: req.key }),
      ...(req.before === undefined ? {} : { before: req.before }),
      limit: Math.min(req.limit ?? DEFAULT_HISTORY_LIMIT, 10_000),
      elideAbove: this.limits.historyValueBytes,
      maxBytes: this.limits.answerBytes,
    });
    const releases = page.releases.map(toHistory);
    if (req.values === true) {
      let used = releases.reduce((n, r) => n + changeBytes(r.changes, r.big), 0);
      const wanted: { release: HistoryRelease; entry: BigValue; ref: ChangeRef }[] = [];
      for (const release of releases) {
        for (const entry of release.big ?? []) {
          if (used + entry[2] > this.limits.answerBytes) continue;
          used += entry[2];
          wanted.push({ release, entry, ref: { rev: release.rev, key: release.changes[entry[0]]![0], side: entry[1] } });
        }
      }
      const values = await this.store.changeValues(req.env, wanted.map((w) => w.ref));
      wanted.forEach(({ release, entry }, i) => {
        if (values[i] === null || values[i] === undefined) return;
        release.changes[entry[0]]![entry[1]] = values[i]!;
        release.big = release.big!.filter((b) => b !== entry);
        if (release.big.length === 0) delete release.big;
      });
    }
    return { env: req.env, releases, ...(page.next === undefined ? {} : { next: page.next }) };
  }

  /** A page of the net changes between two revisions, by key, large values as in history. */
  private async diffPage(req: Extract<AdminRequest, { op: 'diff' }>): Promise<ResultOf['diff']> {
    const current = this.state.rev(req.env);
    if (current === undefined) throw envNotFound(req.env);
    const to = req.to ?? current;
    const [low, high] = req.from <= to ? [req.from, to] : [to, req.from];
    // Large values are never read whole to work this out: compared by size and hash.
    const net = await netValues(await this.store.releasesBetween(req.env, low, high, this.limits.historyValueBytes));
    const page = pageOf(net, req.after, this.limits.answerBytes);
    if (req.values === true) {
      let used = changeBytes(page.changes, page.big);
      const wanted: { index: number; left: LeftOut }[] = [];
      page.left.forEach((lefts, index) => {
        for (const left of lefts ?? []) {
          if (used + left.bytes > this.limits.answerBytes) continue;
          used += left.bytes;
          wanted.push({ index, left });
        }
      });
      const values = await this.store.changeValues(req.env, wanted.map((w) => w.left.ref));
      wanted.forEach(({ index, left }, i) => {
        if (values[i] === null || values[i] === undefined) return;
        // The net change's before is its first release's before, its after the last one's after.
        const side = left.ref.side;
        page.changes[index]![side] = values[i]!;
        page.big = page.big.filter(([c, s]) => !(c === index && s === side));
      });
    }
    const forward = req.from <= to;
    const changes = forward ? page.changes : invert(page.changes);
    const big: BigValue[] = forward ? page.big : page.big.map(([c, side, bytes, sha]) => [c, side === 1 ? 2 : 1, bytes, sha]);
    return { env: req.env, from: req.from, to, changes, ...(big.length === 0 ? {} : { big }), ...(page.next === undefined ? {} : { next: page.next }) };
  }

  private async dispatch(req: AdminRequest, author: string, requestId: string | undefined, deadline: number): Promise<AdminResult> {
    const meta = (op: string): CommitMeta => ({
      author, op, time: Date.now(), deadline, ...(requestId === undefined ? {} : { requestId, requestDigest: requestDigest(req) }),
    });
    switch (req.op) {
      case 'env.add': {
        const release = await this.store.createEnv(checkEnvName(req.env, this.limits), meta(req.op));
        await this.published(release, deadline);
        return { env: req.env, rev: release.rev, changed: 0 };
      }
      case 'env.del': {
        const release = await this.store.dropEnv(req.env, meta(req.op));
        await this.published(release, deadline);
        return { env: req.env, rev: release.rev, changed: release.changes.length };
      }
      case 'env.list':
        return { envs: this.state.info() };
      case 'set': {
        const key = checkKey(req.key, this.limits);
        const { text } = parseValue(req.value, key, this.limits);
        return this.write(req.env, meta(req.op), async () => [[key, text]]);
      }
      case 'get': {
        const values = this.liveValues(req.env);
        const value = values.get(req.key);
        if (value === undefined) throw keyNotFound(req.env, req.key);
        return { env: req.env, rev: this.state.rev(req.env)!, key: req.key, value };
      }
      case 'del':
        return this.write(req.env, meta(req.op), async (view) => {
          if ((await view.get(req.key)) === undefined) throw keyNotFound(req.env, req.key);
          return [[req.key, null]];
        });
      case 'list':
        return this.listPage(req.env, req.prefix ?? '', req.after);
      case 'merge': {
        const key = checkKey(req.key, this.limits);
        const patch = parseValue(req.value, key, this.limits).value;
        return this.write(req.env, meta(req.op), async (view) => {
          const beforeText = await view.get(key);
          const before = beforeText === undefined ? undefined : (JSON.parse(beforeText) as Json);
          const after = limited(() => mergeValue(before, patch));
          return before !== undefined && jsonEqual(before, after) ? [] : [[key, JSON.stringify(after)]];
        });
      }
      case 'clear':
        return this.write(req.env, meta(req.op), async (view) => {
          const beforeText = await view.get(req.key);
          if (beforeText === undefined) return [];
          const result = limited(() => clearValue(JSON.parse(beforeText) as Json, req.path));
          if (!result.changed) return [];
          return [[req.key, result.value === undefined ? null : JSON.stringify(result.value)]];
        });
      case 'apply':
        return this.applyEntries(req.env, req.entries, req.replace, meta(req.op));
      case 'history':
        return this.historyPage(req);
      case 'diff':
        return this.diffPage(req);
      case 'rollback': {
        // Worked out before the commit takes its lock, so other writes go on meanwhile — from what this
        // server holds, at best, within the write's time: the store decides under the lock (the environment,
        // the revision, the request id), and the changes are worked out again there if a release came between.
        const current = this.state.rev(req.env);
        const early = current === undefined || req.rev > current
          ? undefined
          : await untilDeadline(this.store.releasesBetween(req.env, req.rev, current).then((releases) => rollbackChanges(releases)), deadline);
        return this.write(req.env, meta(req.op), async (view) => {
          if (req.rev > view.rev) {
            throw new RequestError(WireError.REVISION_NOT_FOUND, `revision ${req.rev} is after ${req.env}'s current revision ${view.rev}`);
          }
          return view.rev === current && early !== undefined ? early : rollbackChanges(await view.releasesAfter(req.rev));
        });
      }
      case 'status.local':
        if (req.env !== undefined && !this.state.has(req.env)) throw envNotFound(req.env);
        if (this.statusSource === undefined) throw new RequestError(WireError.INTERNAL, 'status is not available');
        return this.statusSource.local(req.env, req.agent);
      case 'status': {
        if (req.env !== undefined && !this.state.has(req.env)) throw envNotFound(req.env);
        const envs: EnvInfo[] = this.state.info().filter((e) => req.env === undefined || e.env === req.env);
        if (this.statusSource === undefined) throw new RequestError(WireError.INTERNAL, 'status is not available');
        return { ...(await this.statusSource.status(req.env, req.agent)), envs };
      }
      case 'user.add':
      case 'user.del':
      case 'user.list':
      case 'user.passwd':
      case 'token.add':
      case 'token.del':
      case 'token.list':
      case 'audit':
      case 'watch':
      case 'unwatch':
        // Access control runs these itself; they never reach the configuration.
        throw new RequestError(WireError.BAD_REQUEST, `${req.op} is not a configuration operation`);
      default:
        return assertNever(req);
    }
  }

  private async applyEntries(env: string, entries: [string, string][], replace: boolean, meta: CommitMeta): Promise<WriteResult> {
    if (entries.length > this.limits.keysPerRelease) {
      throw new RequestError(WireError.INVALID_VALUE, `at most ${this.limits.keysPerRelease} keys per release`);
    }
    const planned: Change[] = await this.bulk.plan(entries);
    return this.write(env, meta, async (view) => {
      if (!replace) return planned;
      const wanted = new Set(planned.map(([k]) => k));
      const removals: Change[] = [...(await view.entries()).keys()].filter((k) => !wanted.has(k)).map((k) => [k, null]);
      return [...planned, ...removals];
    });
  }

  private async write(env: string, meta: CommitMeta, plan: Planner): Promise<WriteResult> {
    // The store reports a missing environment itself, under its lock (another server may have just created it).
    const release = await this.store.commit(env, meta, async (view) => {
      const changes = await plan(view);
      this.checkGrowth(env, changes);
      return changes;
    });
    if (release === null) return { env, rev: this.state.rev(env) ?? 0, changed: 0 };
    await this.published(release, meta.deadline);
    return { env, rev: release.rev, changed: release.changes.length };
  }

  /**
   * A release this server committed, published; the answer waits for it
   * until the write's deadline at most, and never fails for it: the release
   * is committed whatever happens to the read that fetches the releases
   * before it (the poll and the next commit fetch them again).
   */
  private async published(release: StoredRelease, deadline: number | undefined): Promise<void> {
    const publishing = this.committed(release).catch(() => undefined);
    await (deadline === undefined ? publishing : untilDeadline(publishing, deadline));
  }

  /**
   * An environment may not grow past keysPerEnv keys or envBytes bytes: its
   * snapshot is one frame that every agent must be able to take. Changes
   * that shrink it are always allowed.
   */
  private checkGrowth(env: string, changes: Change[]): void {
    const values = this.state.values(env);
    const size = this.state.size(env);
    if (values === undefined || size === undefined) return;
    let { keys, bytes } = size;
    for (const [key, after] of changes) {
      const before = values.get(key);
      if (before !== undefined) {
        keys--;
        bytes -= entryBytes(key, before);
      }
      if (after !== null) {
        keys++;
        bytes += entryBytes(key, after);
      }
    }
    if (keys > size.keys && keys > this.limits.keysPerEnv) {
      throw new RequestError(WireError.INVALID_VALUE, `${env} would hold ${keys} keys, more than the limit of ${this.limits.keysPerEnv}`);
    }
    if (bytes > size.bytes && bytes > this.limits.envBytes) {
      throw new RequestError(WireError.INVALID_VALUE, `${env} would hold ${bytes} bytes of keys and values, more than the limit of ${this.limits.envBytes}`);
    }
  }

  private liveValues(env: string): ReadonlyMap<string, string> {
    const values = this.state.values(env);
    if (values === undefined) throw envNotFound(env);
    return values;
  }
}

/** merge and clear refuse pathological nesting with a RangeError: that is the client's input, not a server fault. */
function limited<T>(compute: () => T): T {
  try {
    return compute();
  } catch (err) {
    if (err instanceof RangeError) throw new RequestError(WireError.INVALID_VALUE, err.message, { cause: err });
    throw err;
  }
}

function keyNotFound(env: string, key: string): RequestError {
  return new RequestError(WireError.KEY_NOT_FOUND, `key ${key} does not exist in ${env}`);
}

function toHistory(r: StoredRelease): HistoryRelease {
  const out: HistoryRelease = { rev: r.rev, prev: r.prev, time: r.time, author: r.author, op: r.op, changes: r.changes };
  if (r.big !== undefined && r.big.length > 0) out.big = r.big;
  if (r.more !== undefined) out.more = r.more;
  return out;
}

/** Bytes of keys and values an answer's changes carry (a value left out counts a little). */
function changeBytes(changes: KeyChange[], big: BigValue[] | undefined): number {
  let n = 40 * (big?.length ?? 0);
  for (const [key, before, after] of changes) n += Buffer.byteLength(key) + (before === null ? 0 : Buffer.byteLength(before)) + (after === null ? 0 : Buffer.byteLength(after));
  return n;
}

function assertNever(value: never): never {
  throw new RequestError(WireError.BAD_REQUEST, `unknown operation ${JSON.stringify(value)}`);
}

/** What `work` gives if it settles by `deadline` (ms since the epoch); undefined if it fails or is late (it runs on, unheeded). */
function untilDeadline<T>(work: Promise<T>, deadline: number): Promise<T | undefined> {
  return beforeDeadline(work, deadline).catch(() => undefined);
}

import { WireError, type AdminRequest, type Change, type WriteResult } from '../../protocol/index.js';
import { beforeDeadline } from '../../deadline.js';
import { keyNotFound, RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import { rollbackChanges } from '../releases/history.js';
import type { ReleaseLog } from '../releases/log.js';
import { entryBytes, type ServerState } from '../releases/state.js';
import { orReplay, replayRefusal, requestDigest, type RequestRecord } from '../store/requests.js';
import type { CommitMeta, Planner, Store, StoredRelease } from '../store/types.js';
import { clearValue, jsonEqual, mergeValue, type Json } from './merge.js';
import { checkEnvName, checkKey, parseValue } from './validate.js';
import { BulkPool } from './validate-pool.js';

/** Who writes, and by when (ms since the epoch) the answer is due. */
export interface WriteCall {
  author: string;
  /** The request id it came with (Request.rid), if any. */
  requestId?: string;
  deadline: number;
}

type WriteOf<K extends AdminRequest['op']> = Extract<AdminRequest, { op: K }>;

/**
 * The write path: each configuration write is checked, planned from the
 * environment as the store holds it under its lock, committed as one
 * release, and answered once this server has published it (or its time is
 * up). A write whose request id was committed before is answered with the
 * first one's result, as a value, and writes nothing.
 */
export class ConfigWrites {
  private readonly bulk: BulkPool;

  constructor(
    private readonly store: Store,
    private readonly state: ServerState,
    private readonly log: ReleaseLog,
    private readonly limits: ServerLimits,
  ) {
    this.bulk = new BulkPool(limits);
  }

  /** Applies whose keys and values were checked on the bulk pool's thread. */
  get appliesCheckedOnThreads(): number {
    return this.bulk.pooled;
  }

  close(): Promise<void> {
    return this.bulk.close();
  }

  async addEnv(req: WriteOf<'env.add'>, call: WriteCall): Promise<WriteResult> {
    const done = await orReplay(this.store.createEnv(checkEnvName(req.env, this.limits), meta(req, call)));
    if (done.kind === 'replay') return this.replayed(done.record, req, call);
    await this.published(done.outcome, call.deadline);
    return { env: req.env, rev: done.outcome.rev, changed: 0 };
  }

  async dropEnv(req: WriteOf<'env.del'>, call: WriteCall): Promise<WriteResult> {
    const done = await orReplay(this.store.dropEnv(req.env, meta(req, call)));
    if (done.kind === 'replay') return this.replayed(done.record, req, call);
    await this.published(done.outcome, call.deadline);
    return { env: req.env, rev: done.outcome.rev, changed: done.outcome.changes.length };
  }

  set(req: WriteOf<'set'>, call: WriteCall): Promise<WriteResult> {
    const key = checkKey(req.key, this.limits);
    const { text } = parseValue(req.value, key, this.limits);
    return this.write(req, call, () => Promise.resolve([[key, text]]));
  }

  del(req: WriteOf<'del'>, call: WriteCall): Promise<WriteResult> {
    return this.write(req, call, async (view) => {
      if ((await view.get(req.key)) === undefined) throw keyNotFound(req.env, req.key);
      return [[req.key, null]];
    });
  }

  merge(req: WriteOf<'merge'>, call: WriteCall): Promise<WriteResult> {
    const key = checkKey(req.key, this.limits);
    const patch = parseValue(req.value, key, this.limits).value;
    return this.write(req, call, async (view) => {
      const beforeText = await view.get(key);
      const before = beforeText === undefined ? undefined : (JSON.parse(beforeText) as Json);
      const after = limited(() => mergeValue(before, patch));
      return before !== undefined && jsonEqual(before, after) ? [] : [[key, JSON.stringify(after)]];
    });
  }

  clear(req: WriteOf<'clear'>, call: WriteCall): Promise<WriteResult> {
    return this.write(req, call, async (view) => {
      const beforeText = await view.get(req.key);
      if (beforeText === undefined) return [];
      const result = limited(() => clearValue(JSON.parse(beforeText) as Json, req.path));
      if (!result.changed) return [];
      return [[req.key, result.value === undefined ? null : JSON.stringify(result.value)]];
    });
  }

  async apply(req: WriteOf<'apply'>, call: WriteCall): Promise<WriteResult> {
    if (req.entries.length > this.limits.keysPerRelease) {
      throw new RequestError(WireError.INVALID_VALUE, `at most ${this.limits.keysPerRelease} keys per release`);
    }
    const written = meta(req, call);
    const planned: Change[] = await this.bulk.plan(req.entries);
    return this.write(req, call, async (view) => {
      if (!req.replace) return planned;
      const wanted = new Set(planned.map(([k]) => k));
      const removals: Change[] = [...(await view.entries()).keys()].filter((k) => !wanted.has(k)).map((k) => [k, null]);
      return [...planned, ...removals];
    }, written);
  }

  async rollback(req: WriteOf<'rollback'>, call: WriteCall): Promise<WriteResult> {
    // Worked out before the commit takes its lock, so other writes go on meanwhile — from what this
    // server holds, at best, within the write's time: the store decides under the lock (the environment,
    // the revision, the request id), and the changes are worked out again there if a release came between.
    const current = this.state.rev(req.env);
    const early = current === undefined || req.rev > current
      ? undefined
      : await untilDeadline(this.store.releasesBetween(req.env, req.rev, current).then((releases) => rollbackChanges(releases)), call.deadline);
    return this.write(req, call, async (view) => {
      if (req.rev > view.rev) {
        throw new RequestError(WireError.REVISION_NOT_FOUND, `revision ${req.rev} is after ${req.env}'s current revision ${view.rev}`);
      }
      // Undoing the release that created the environment would empty it, not restore it: no state of it to go back to.
      if (req.rev < view.created) {
        throw new RequestError(WireError.REVISION_NOT_FOUND, `${req.env} did not exist at revision ${req.rev}: its first revision is ${view.created}`);
      }
      return view.rev === current && early !== undefined ? early : rollbackChanges(await view.releasesAfter(req.rev));
    });
  }

  private async write(req: WriteOf<'set' | 'del' | 'merge' | 'clear' | 'apply' | 'rollback'>, call: WriteCall, plan: Planner, written = meta(req, call)): Promise<WriteResult> {
    const env = req.env;
    // The store reports a missing environment itself, under its lock (another server may have just created it).
    const done = await orReplay(this.store.commit(env, written, async (view) => {
      const changes = await plan(view);
      this.checkGrowth(env, changes);
      return changes;
    }));
    if (done.kind === 'replay') return this.replayed(done.record, req, call);
    const release = done.outcome;
    if (release === null) return { env, rev: this.state.rev(env) ?? 0, changed: 0 };
    await this.published(release, call.deadline);
    return { env, rev: release.rev, changed: release.changes.length };
  }

  /**
   * The answer to a write whose request id was committed before — through
   * this server or any other of the store — when it is the same request by
   * the same account: the first one's result, marked `replayed`, once this
   * server has caught up to it (so a read that follows sees it). The id
   * kept for another request, or by another account, is refused
   * (BAD_REQUEST naming the id).
   */
  private async replayed(kept: RequestRecord, req: AdminRequest & { env: string }, call: WriteCall): Promise<WriteResult> {
    const refused = replayRefusal(kept, { rid: call.requestId ?? '', author: call.author, op: req.op, env: req.env, digest: requestDigest(req) });
    if (refused !== undefined) throw new RequestError(WireError.BAD_REQUEST, refused);
    if (kept.rev > this.log.applied) await untilDeadline(this.log.pull(), call.deadline);
    return { env: kept.env, rev: kept.rev, changed: kept.changed, replayed: true };
  }

  /**
   * A release this server committed, published; the answer waits for it
   * until the write's deadline at most, and never fails for it: the release
   * is committed whatever happens to the read that fetches the releases
   * before it (the poll and the next commit fetch them again).
   */
  private async published(release: StoredRelease, deadline: number): Promise<void> {
    await untilDeadline(this.log.committed(release).catch(() => undefined), deadline);
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
}

/** What the store keeps of a write: who, what, when, by when, and its request id with the request's digest. */
function meta(req: AdminRequest, call: WriteCall): CommitMeta {
  return {
    author: call.author, op: req.op, time: Date.now(), deadline: call.deadline,
    ...(call.requestId === undefined ? {} : { requestId: call.requestId, requestDigest: requestDigest(req) }),
  };
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

/** What `work` gives if it settles by `deadline` (ms since the epoch); undefined if it fails or is late (it runs on, unheeded). */
function untilDeadline<T>(work: Promise<T>, deadline: number): Promise<T | undefined> {
  return beforeDeadline(work, deadline).catch(() => undefined);
}

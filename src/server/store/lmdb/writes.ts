import { CHAIN_GENESIS, WireError, type Change, type KeyChange } from '../../../protocol/index.js';
import { envNotFound, RequestError } from '../../errors.js';
import { keyChangesFrom } from '../changes.js';
import { promised } from '../../../promised.js';
import type { Mutex } from '../mutex.js';
import { newRelease } from '../release.js';
import { REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH, RequestReplay } from '../requests.js';
import type { CommitMeta, EnvView, Planner, StoredRelease } from '../types.js';
import { readValues, valueKey, valueRange, type EnvRecord, type LmdbFiles } from './files.js';
import { releasesBetween } from './history.js';
import { writeRelease } from './records.js';

/**
 * The writes of the embedded store: each release is planned and written
 * under the store's mutex, in one LMDB transaction with its values, its
 * environment's record, the pruning of old releases and its request id.
 */
export class LmdbWrites {
  constructor(private readonly files: () => LmdbFiles, private readonly mutex: Mutex, private readonly retainReleases: number) {}

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.mutex.run(async () => {
      const files = this.files();
      seenRequest(files, meta);
      if (files.envs.get(env) !== undefined) {
        throw new RequestError(WireError.ENV_EXISTS, `environment ${env} already exists`);
      }
      const release = newRelease(env, files.head + 1, 0, meta, [], CHAIN_GENESIS);
      await files.root.transaction(() => {
        void files.envs.put(env, { rev: release.rev, floor: 0, kept: 1, created: release.rev, chain: release.chain! });
        writeRelease(files, release);
        keepRequest(files, meta, env, release.rev, 0);
      });
      files.head = release.rev;
      return release;
    });
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.mutex.run(async () => {
      const files = this.files();
      seenRequest(files, meta);
      const current = files.envs.get(env);
      if (current === undefined) throw envNotFound(env);
      const changes: KeyChange[] = [...readValues(files, env)].map(([k, v]) => [k, v, null]);
      const release = newRelease(env, files.head + 1, current.rev, meta, changes, current.chain ?? '', true);
      await files.root.transaction(() => {
        for (const key of files.values.getKeys(valueRange(env))) void files.values.remove(key);
        void files.envs.remove(env);
        writeRelease(files, release);
        keepRequest(files, meta, env, release.rev, changes.length);
      });
      files.head = release.rev;
      return release;
    });
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.mutex.run(async () => {
      const files = this.files();
      seenRequest(files, meta);
      const current = files.envs.get(env);
      if (current === undefined) throw envNotFound(env);
      const view: EnvView = {
        env,
        rev: current.rev,
        created: current.created,
        get: (key) => promised(() => files.values.get(valueKey(env, key))),
        entries: () => promised(() => readValues(files, env)),
        releasesAfter: (fromRev) => promised(() => releasesBetween(files, env, current, fromRev, current.rev)),
      };
      const planned: Change[] = await plan(view);
      const changes = keyChangesFrom(planned, (key) => files.values.get(valueKey(env, key)));
      if (changes.length === 0) {
        // Nothing to release; the id is kept all the same, so that its retry changes nothing either.
        if (meta.requestId !== undefined) await files.root.transaction(() => keepRequest(files, meta, env, current.rev, 0));
        return null;
      }
      const release = newRelease(env, files.head + 1, current.rev, meta, changes, current.chain ?? '');
      await files.root.transaction(() => {
        for (const [key, , after] of changes) {
          if (after === null) void files.values.remove(valueKey(env, key));
          else void files.values.put(valueKey(env, key), after);
        }
        void files.envs.put(env, this.pruned(files, env, { ...current, rev: release.rev, kept: current.kept + 1, chain: release.chain! }));
        writeRelease(files, release);
        keepRequest(files, meta, env, release.rev, changes.length);
      });
      files.head = release.rev;
      return release;
    });
  }

  /** Drops the oldest releases of `env` beyond the retention limit (inside the coming commit). */
  private pruned(files: LmdbFiles, env: string, next: EnvRecord): EnvRecord {
    const excess = next.kept - this.retainReleases;
    if (excess <= 0) return next;
    let floor = next.floor;
    let dropped = 0;
    for (const { key, value } of files.releases.getRange({ start: [env, next.created], end: [env, next.rev], limit: excess })) {
      for (const [i, side] of value.out ?? []) void files.outValues.remove([env, key[1], i, side]);
      void files.releases.remove(key);
      void files.log.remove(key[1]);
      floor = key[1];
      dropped++;
    }
    return { ...next, floor, kept: next.kept - dropped };
  }
}

/** A write whose request id was committed before is not made again: RequestReplay (under the commit lock). */
function seenRequest(files: LmdbFiles, meta: CommitMeta): void {
  if (meta.requestId === undefined) return;
  const seen = files.requests.get(meta.requestId);
  if (seen !== undefined) throw new RequestReplay(seen);
}

/** Keeps the write's request id with its result and whose request it was (inside its transaction), and drops ids older than REQUEST_IDS_KEPT_MS. */
function keepRequest(files: LmdbFiles, meta: CommitMeta, env: string, rev: number, changed: number): void {
  if (meta.requestId === undefined) return;
  void files.requests.put(meta.requestId, { env, rev, changed, time: meta.time, author: meta.author, op: meta.op, digest: meta.requestDigest ?? '' });
  void files.requestTimes.put([meta.time, meta.requestId], 1);
  for (const { key } of files.requestTimes.getRange({ end: [meta.time - REQUEST_IDS_KEPT_MS], limit: REQUEST_PRUNE_BATCH })) {
    void files.requestTimes.remove(key);
    if (files.requests.get(key[1])?.time === key[0]) void files.requests.remove(key[1]);
  }
}

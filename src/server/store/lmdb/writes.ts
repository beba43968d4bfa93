import { CHAIN_GENESIS, WireError, type KeyChange } from '../../../protocol/index.js';
import { envNotFound, RequestError } from '../../errors.js';
import { keyChangesFrom } from '../changes.js';
import { promised } from '../../../promised.js';
import type { Mutex } from '../mutex.js';
import { builtOn, dependentsOf, missingDependent, parentsChange, planOf, viaTargets } from '../plan.js';
import { newRelease } from '../release.js';
import { REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH, RequestReplay } from '../requests.js';
import type { CommitMeta, EnvView, Planner, StoredRelease } from '../types.js';
import { readValues, valueKey, valueRange, type EnvRecord, type LmdbFiles } from './files.js';
import { releasesBetween } from './history.js';
import { writeRelease, writeVia } from './records.js';

/**
 * The writes of the embedded store: each release is planned and written
 * under the store's mutex, in one LMDB transaction with its values, its
 * environment's record, the `via` releases of the environments built on it,
 * the pruning of old releases and its request id. The mutex serialises
 * every write, so what a plan reads of other environments is current.
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
      const dependents = dependentsOf(layout(files), env);
      if (dependents.length > 0) throw builtOn(env, dependents);
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
        head: files.head,
        get: (key) => promised(() => files.values.get(valueKey(env, key))),
        entries: () => promised(() => readValues(files, env)),
        layout: () => promised(() => layout(files)),
        exist: (names) => promised(() => new Set(names.filter((name) => files.envs.get(name) !== undefined))),
        ownOf: (envs, keys) => promised(() => ownOf(files, envs, keys)),
        releasesAfter: (fromRev) => promised(() => releasesBetween(files, env, current, fromRev, current.rev)),
      };
      const planned = planOf(await plan(view));
      const changes = keyChangesFrom(planned.changes, (key) => files.values.get(valueKey(env, key)));
      const parentsChanged = parentsChange(planned, current.parents ?? []);
      if (changes.length === 0 && !parentsChanged) {
        // Nothing to release; the id is kept all the same, so that its retry changes nothing either.
        if (meta.requestId !== undefined) await files.root.transaction(() => keepRequest(files, meta, env, current.rev, 0));
        return null;
      }
      const rev = files.head + 1;
      const parents = parentsChanged ? planned.parents : undefined;
      const release = newRelease(env, rev, current.rev, meta, changes, current.chain ?? '', false, { merged: planned.merged?.get(env), parents });
      // The environments built on this one whose view the write changes: a `via` release each, at the same revision.
      const group = viaTargets(planned, env).map(([dep, merged]) => {
        const record = files.envs.get(dep);
        if (record === undefined) throw missingDependent(env, dep);
        return { record, release: newRelease(dep, rev, record.rev, meta, [], record.chain ?? '', false, { merged, via: env }) };
      });
      await files.root.transaction(() => {
        for (const [key, , after] of changes) {
          if (after === null) void files.values.remove(valueKey(env, key));
          else void files.values.put(valueKey(env, key), after);
        }
        const next: EnvRecord = { ...current, rev, kept: current.kept + 1, chain: release.chain! };
        if (parents !== undefined) {
          if (parents.length > 0) next.parents = parents;
          else delete next.parents;
        }
        void files.envs.put(env, this.pruned(files, env, next));
        writeRelease(files, release, group.map((g) => g.release.env));
        for (const { record, release: via } of group) {
          writeVia(files, via);
          void files.envs.put(via.env, { ...record, rev, chain: via.chain! });
        }
        keepRequest(files, meta, env, rev, changes.length);
      });
      files.head = rev;
      return group.length === 0 ? release : { ...release, group: group.map((g) => g.release) };
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
      // The `via` releases it made go with it: they show its changes.
      for (const dep of value.deps ?? []) void files.via.remove([dep, key[1]]);
      void files.releases.remove(key);
      void files.log.remove(key[1]);
      floor = key[1];
      dropped++;
    }
    return { ...next, floor, kept: next.kept - dropped };
  }
}

/** The parent list of every live environment that has parents. */
function layout(files: LmdbFiles): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { key, value } of files.envs.getRange()) if (value.parents !== undefined && value.parents.length > 0) out.set(key, value.parents);
  return out;
}

/** Own entries of `envs`: of `keys` only, or all of them. */
function ownOf(files: LmdbFiles, envs: string[], keys?: string[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const env of envs) {
    if (keys === undefined) {
      out.set(env, readValues(files, env));
      continue;
    }
    const values = new Map<string, string>();
    for (const key of keys) {
      const value = files.values.get(valueKey(env, key));
      if (value !== undefined) values.set(key, value);
    }
    out.set(env, values);
  }
  return out;
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

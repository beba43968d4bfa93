import fs from 'node:fs';
import path from 'node:path';
import { WireError, type EnvInfo } from '../../../protocol/index.js';
import { promised } from '../../../promised.js';
import { RequestError } from '../../errors.js';
import { Mutex } from '../mutex.js';
import type {
  ChangeRef, CommitMeta, EnvState, HistoryPage, HistoryPageQuery, Planner, Store, StoredRelease,
} from '../types.js';
import { LmdbAccess } from './access.js';
import { openFiles, readValues, valueRange, type LmdbFiles } from './files.js';
import { LmdbHistory } from './history.js';
import { LmdbIdentity } from './identity.js';
import { releaseLock, takeLock } from './lock.js';
import { LmdbMembers } from './members.js';
import { LmdbWrites } from './writes.js';

export interface LmdbStoreOptions {
  /** Releases kept per environment before the oldest are pruned. */
  retainReleases: number;
  /** Audit entries kept; the oldest beyond are pruned. */
  retainAudit?: number;
}

/**
 * The embedded system of record: one LMDB environment in the server's data
 * folder, written by this process only (a lock file keeps a second server
 * out). Commits are serialised by a mutex and written in one LMDB
 * transaction. This class opens and closes the folder and puts the parts
 * together: the databases (files.ts), writes (writes.ts), reads of releases
 * and history (history.ts, records.ts), accounts, members and identity.
 */
export class LmdbStore implements Store {
  readonly description: string;
  readonly access: LmdbAccess;
  readonly members: LmdbMembers;
  readonly identity: LmdbIdentity;
  readonly shared = false;
  private readonly dir: string;
  private readonly mutex = new Mutex();
  private readonly writes: LmdbWrites;
  private readonly releases: LmdbHistory;
  private opened?: LmdbFiles;
  /** The head when the store was closed (head() answers it until it opens again). */
  private closedHead = 0;
  private lockFd: number | undefined;

  constructor(dir: string, options: LmdbStoreOptions) {
    this.dir = path.resolve(dir);
    this.description = `lmdb:${this.dir}`;
    const files = (): LmdbFiles => this.files();
    this.access = new LmdbAccess(() => files().access, this.mutex, options.retainAudit ?? 1_000_000);
    this.members = new LmdbMembers(() => files().servers, this.mutex);
    this.identity = new LmdbIdentity(files, this.mutex);
    this.writes = new LmdbWrites(files, this.mutex, options.retainReleases);
    this.releases = new LmdbHistory(files);
  }

  async open(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    this.lockFd = takeLock(path.join(this.dir, 'server.pid'));
    this.opened = await openFiles(this.dir);
  }

  async close(): Promise<void> {
    const files = this.opened;
    this.opened = undefined;
    if (files !== undefined) this.closedHead = files.head;
    await files?.root.close();
    if (this.lockFd !== undefined) {
      releaseLock(path.join(this.dir, 'server.pid'), this.lockFd);
      this.lockFd = undefined;
    }
  }

  head(): Promise<number> {
    return Promise.resolve(this.opened?.head ?? this.closedHead);
  }

  loadAll(): Promise<EnvState[]> {
    return promised(() => {
      const files = this.files();
      const out: EnvState[] = [];
      for (const { key: env, value } of files.envs.getRange()) {
        const state: EnvState = { env, rev: value.rev, values: readValues(files, env), chain: value.chain ?? '' };
        if (value.parents !== undefined && value.parents.length > 0) state.parents = value.parents;
        out.push(state);
      }
      return out;
    });
  }

  listEnvs(): Promise<EnvInfo[]> {
    return promised(() => {
      const files = this.files();
      const out: EnvInfo[] = [];
      for (const { key: env, value } of files.envs.getRange()) {
        out.push({ env, rev: value.rev, keys: files.values.getKeysCount(valueRange(env)) });
      }
      return out;
    });
  }

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.writes.createEnv(env, meta);
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.writes.dropEnv(env, meta);
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.writes.commit(env, meta, plan);
  }

  releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    return this.releases.releasesSince(after, limit);
  }

  releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    return this.releases.releasesBetween(env, from, to, elideAbove);
  }

  historyPage(env: string, query: HistoryPageQuery): Promise<HistoryPage> {
    return this.releases.historyPage(env, query);
  }

  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    return this.releases.changeValues(env, refs);
  }

  private files(): LmdbFiles {
    if (this.opened === undefined) throw new RequestError(WireError.STORE_UNAVAILABLE, `store ${this.dir} is closed`);
    return this.opened;
  }
}

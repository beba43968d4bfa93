import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { REQUEST_IDS_KEPT_MS, REQUEST_PRUNE_BATCH, RequestReplay, type RequestRecord } from '../requests.js';
import { CHAIN_GENESIS, LocalErrorCode, VitefaError, WireError, type BigValue, type Change, type EnvInfo, type KeyChange } from '../../../protocol/index.js';
import { envNotFound, RequestError } from '../../errors.js';
import { Mutex } from '../mutex.js';
import { chainOfStored, elided, keyChangesFrom, valueHash } from '../changes.js';
import { PROOF_KEPT_MS, newStoreId } from '../identity.js';
import { LmdbAccess, type AccessDbs } from './access.js';
import { LmdbMembers } from './members.js';
import type {
  MemberRecord, StoreChallenge, StoreIdentity, ChangeRef, HistoryPage, HistoryPageQuery,
  CommitMeta, EnvState, EnvView, HistoryQuery, Planner, Store, StoredRelease,
} from '../types.js';

/** Changes of one release in a history page, at most (the rest are counted: StoredRelease.more). */
const PAGE_CHANGES_AT_MOST = 10_000;

/** Layout version of the embedded store; bump with a migration when it changes. */
const SCHEMA_VERSION = 1;

interface EnvRecord {
  rev: number;
  /** Releases up to this revision were pruned; history is complete after it (0: nothing pruned). */
  floor: number;
  /** Releases of this environment still kept. */
  kept: number;
  /** Revision of the release that created this incarnation (an environment deleted and created again starts afresh). */
  created: number;
  /** Chain value of the release at `rev` (absent in stores written before chains). */
  chain?: string;
}

/**
 * A release as kept under its [env, rev] key. Values longer than
 * OUT_OF_LINE_BYTES are kept apart (`out`: [change, side, bytes, sha256],
 * the value null in `changes`, its text in the `release-values` database),
 * so that reading history or working out a diff never decodes them: their
 * size and hash are in the record. Records written before this have every
 * value in line.
 */
type ReleaseRecord = Omit<StoredRelease, 'env' | 'rev' | 'big' | 'more'> & { out?: BigValue[] };

/** Values longer than this (bytes) are kept apart from their release's record. */
const OUT_OF_LINE_BYTES = 4096;

export interface LmdbStoreOptions {
  /** Releases kept per environment before the oldest are pruned. */
  retainReleases: number;
  /** Audit entries kept; the oldest beyond are pruned. */
  retainAudit?: number;
}

/**
 * The embedded system of record: one LMDB environment in the server's data
 * folder, written by this process only (a lock file keeps a second server
 * out). Commits are serialised by a mutex and written in one LMDB transaction.
 */
export class LmdbStore implements Store {
  readonly description: string;
  private readonly dir: string;
  private readonly options: LmdbStoreOptions;
  private root?: RootDatabase;
  private meta!: Database<number, string>;
  private envs!: Database<EnvRecord, string>;
  /** "<env>\0<key>" -> JSON text. */
  private values!: Database<string, string>;
  private releases!: Database<ReleaseRecord, [string, number]>;
  /** Values kept apart from their release: [env, rev, change, side] -> JSON text. */
  private outValues!: Database<string, [string, number, number, number]>;
  /** Global order of releases: rev -> env. */
  private log!: Database<string, number>;
  private headRev = 0;
  private readonly mutex = new Mutex();
  private lockFd: number | undefined;
  private accessDbs?: AccessDbs;
  readonly access: LmdbAccess;
  readonly members: LmdbMembers;
  readonly identity: StoreIdentity;
  readonly shared = false;
  /** Rows written for peers' proofs: key -> [secret, time]. */
  private proofs!: Database<[Buffer, number], string>;
  private servers?: Database<MemberRecord, string>;
  /** Request ids of configuration writes -> what they answered; and [time, id] to prune them by age. */
  private requests!: Database<RequestRecord, string>;
  private requestTimes!: Database<number, [number, string]>;

  constructor(dir: string, options: LmdbStoreOptions) {
    this.dir = path.resolve(dir);
    this.description = `lmdb:${this.dir}`;
    this.options = options;
    this.access = new LmdbAccess(() => {
      this.db();
      return this.accessDbs!;
    }, this.mutex, options.retainAudit ?? 1_000_000);
    this.members = new LmdbMembers(() => {
      this.db();
      return this.servers!;
    }, this.mutex);
    this.identity = {
      id: async () => String(this.meta.get('store-id') ?? ''),
      challenge: () => this.mutex.run(async () => this.challenge()),
      answer: async (key) => {
        this.db();
        const row = this.proofs.get(key);
        return row === undefined ? undefined : Buffer.from(row[0]);
      },
      adopt: (serverId) => this.mutex.run(async () => this.adopt(serverId)),
    };
  }

  private async challenge(): Promise<StoreChallenge> {
    const root = this.db();
    const key = randomBytes(16).toString('hex');
    const secret = randomBytes(32);
    const now = Date.now();
    await root.transaction(() => {
      for (const { key: old, value } of this.proofs.getRange()) if (value[1] < now - PROOF_KEPT_MS) this.proofs.remove(old);
      this.proofs.put(key, [secret, now]);
    });
    return { key, secret };
  }

  private async adopt(serverId: string): Promise<{ before: string; after: string }> {
    const root = this.db();
    const before = String(this.meta.get('store-id') ?? '');
    const after = newStoreId();
    await root.transaction(() => {
      (this.meta as unknown as Database<unknown, string>).put('store-id', after);
      for (const { key } of this.servers!.getRange()) if (key !== serverId) this.servers!.remove(key);
      for (const { key } of this.proofs.getRange()) this.proofs.remove(key);
      this.accessDbs!.meta.remove('secret:peer-key');
    });
    return { before, after };
  }

  async open(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    this.lockFd = takeLock(path.join(this.dir, 'server.pid'));
    const root = open({ path: path.join(this.dir, 'store'), maxDbs: 16, mapSize: 1 << 30 });
    this.root = root;
    this.meta = root.openDB({ name: 'meta' });
    this.envs = root.openDB({ name: 'envs' });
    this.values = root.openDB({ name: 'values' });
    this.releases = root.openDB({ name: 'releases' });
    this.log = root.openDB({ name: 'log' });
    this.accessDbs = {
      root,
      meta: this.meta as unknown as Database<unknown, string>,
      accounts: root.openDB({ name: 'accounts' }),
      tokens: root.openDB({ name: 'tokens' }),
      audit: root.openDB({ name: 'audit' }),
    };
    this.servers = root.openDB({ name: 'servers' });
    this.requests = root.openDB({ name: 'requests' });
    this.requestTimes = root.openDB({ name: 'request-times' });
    this.proofs = root.openDB({ name: 'proofs' });
    this.outValues = root.openDB({ name: 'release-values' });
    // The store id, made once (a store from an older build gets one now).
    if (this.meta.get('store-id') === undefined) await (this.meta as unknown as Database<unknown, string>).put('store-id', newStoreId());
    const schema = this.meta.get('schema');
    if (schema === undefined) {
      await this.meta.put('schema', SCHEMA_VERSION);
    } else if (schema > SCHEMA_VERSION) {
      throw new VitefaError(
        LocalErrorCode.SCHEMA_TOO_NEW,
        `store ${this.dir} has schema ${schema}, newer than this build knows (${SCHEMA_VERSION})`,
      );
    }
    this.headRev = this.meta.get('head') ?? 0;
  }

  async close(): Promise<void> {
    await this.root?.close();
    this.root = undefined;
    if (this.lockFd !== undefined) {
      fs.closeSync(this.lockFd);
      fs.rmSync(path.join(this.dir, 'server.pid'), { force: true });
      this.lockFd = undefined;
    }
  }

  async head(): Promise<number> {
    return this.headRev;
  }

  async loadAll(): Promise<EnvState[]> {
    this.db();
    const out: EnvState[] = [];
    for (const { key: env, value } of this.envs.getRange()) {
      out.push({ env, rev: value.rev, values: this.readValues(env), chain: value.chain ?? '' });
    }
    return out;
  }

  async listEnvs(): Promise<EnvInfo[]> {
    this.db();
    const out: EnvInfo[] = [];
    for (const { key: env, value } of this.envs.getRange()) {
      out.push({ env, rev: value.rev, keys: this.values.getKeysCount(valueRange(env)) });
    }
    return out;
  }

  async releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    this.db();
    const out: StoredRelease[] = [];
    for (const { key: rev, value: env } of this.log.getRange({ start: after + 1, limit })) {
      const record = this.releases.get([env, rev]);
      if (record !== undefined) out.push(this.stored(env, rev, record));
    }
    return out;
  }

  createEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.mutex.run(async () => {
      this.db();
      this.seenRequest(meta);
      if (this.envs.get(env) !== undefined) {
        throw new RequestError(WireError.ENV_EXISTS, `environment ${env} already exists`);
      }
      const rev = this.headRev + 1;
      const record: ReleaseRecord = { prev: 0, time: meta.time, author: meta.author, op: meta.op, changes: [] };
      record.chain = chainOfStored(CHAIN_GENESIS, { env, rev, ...record });
      await this.db().transaction(() => {
        this.envs.put(env, { rev, floor: 0, kept: 1, created: rev, chain: record.chain! });
        this.writeRelease(env, rev, record);
        this.keepRequest(meta, env, rev, 0);
      });
      this.headRev = rev;
      return this.stored(env, rev, record);
    });
  }

  dropEnv(env: string, meta: CommitMeta): Promise<StoredRelease> {
    return this.mutex.run(async () => {
      this.db();
      this.seenRequest(meta);
      const current = this.envs.get(env);
      if (current === undefined) throw envNotFound(env);
      const rev = this.headRev + 1;
      const changes: KeyChange[] = [...this.readValues(env)].map(([k, v]) => [k, v, null]);
      const record: ReleaseRecord = {
        prev: current.rev, time: meta.time, author: meta.author, op: meta.op, changes, drop: true,
      };
      record.chain = chainOfStored(current.chain ?? '', { env, rev, ...record });
      await this.db().transaction(() => {
        for (const key of this.values.getKeys(valueRange(env))) this.values.remove(key);
        this.envs.remove(env);
        this.writeRelease(env, rev, record);
        this.keepRequest(meta, env, rev, changes.length);
      });
      this.headRev = rev;
      return this.stored(env, rev, record);
    });
  }

  commit(env: string, meta: CommitMeta, plan: Planner): Promise<StoredRelease | null> {
    return this.mutex.run(async () => {
      this.db();
      this.seenRequest(meta);
      const current = this.envs.get(env);
      if (current === undefined) throw envNotFound(env);
      const view: EnvView = {
        env,
        rev: current.rev,
        get: async (key) => this.values.get(valueKey(env, key)),
        entries: async () => this.readValues(env),
        releasesAfter: async (fromRev) => this.releasesBetweenSync(env, current, fromRev, current.rev),
      };
      const planned: Change[] = await plan(view);
      const changes = keyChangesFrom(planned, (key) => this.values.get(valueKey(env, key)));
      if (changes.length === 0) {
        // Nothing to release; the id is kept all the same, so that its retry changes nothing either.
        if (meta.requestId !== undefined) await this.db().transaction(() => this.keepRequest(meta, env, current.rev, 0));
        return null;
      }
      const rev = this.headRev + 1;
      const record: ReleaseRecord = { prev: current.rev, time: meta.time, author: meta.author, op: meta.op, changes };
      record.chain = chainOfStored(current.chain ?? '', { env, rev, ...record });
      await this.db().transaction(() => {
        for (const [key, , after] of changes) {
          if (after === null) this.values.remove(valueKey(env, key));
          else this.values.put(valueKey(env, key), after);
        }
        this.envs.put(env, this.pruned(env, { ...current, rev, kept: current.kept + 1, chain: record.chain! }));
        this.writeRelease(env, rev, record);
        this.keepRequest(meta, env, rev, changes.length);
      });
      this.headRev = rev;
      return this.stored(env, rev, record);
    });
  }

  async history(env: string, query: HistoryQuery): Promise<StoredRelease[]> {
    this.db();
    const current = this.envs.get(env);
    if (current === undefined) throw envNotFound(env);
    const out: StoredRelease[] = [];
    const start: [string, number] = [env, query.before === undefined ? Number.MAX_SAFE_INTEGER : query.before - 1];
    // Releases of this incarnation only: `end` is exclusive in a reverse range.
    for (const { key, value } of this.releases.getRange({ start, end: [env, current.created - 1], reverse: true })) {
      if (out.length >= query.limit) break;
      const stored = this.stored(env, key[1], value);
      if (query.key !== undefined) {
        stored.changes = stored.changes.filter(([k]) => k === query.key);
        if (stored.changes.length === 0) continue;
      }
      out.push(stored);
    }
    return out;
  }

  async releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    this.db();
    const current = this.envs.get(env);
    if (current === undefined) throw envNotFound(env);
    if (elideAbove === undefined) return this.releasesBetweenSync(env, current, from, to);
    // Each release is decoded whole here (its large values too): one at a time, giving the event loop a turn
    // between them, and only its small values kept.
    const revs = this.revsBetween(env, current, from, to);
    const out: StoredRelease[] = [];
    for (const rev of revs) {
      const record = this.releases.get([env, rev]);
      if (record !== undefined) out.push(this.light(env, rev, record, elideAbove));
      await nextTurn();
    }
    return out;
  }

  async historyPage(env: string, q: HistoryPageQuery): Promise<HistoryPage> {
    this.db();
    const current = this.envs.get(env);
    if (current === undefined) throw envNotFound(env);
    const releases: StoredRelease[] = [];
    let used = 0;
    const start: [string, number] = [env, q.before === undefined ? Number.MAX_SAFE_INTEGER : q.before - 1];
    // The revisions first (no value decoded), then each release on its own turn of the event loop.
    const revs = [...this.releases.getKeys({ start, end: [env, current.created - 1], reverse: true })].map((key) => key[1]);
    for (const rev of revs) {
      if (releases.length >= q.limit) break;
      if (used >= q.maxBytes && releases.length > 0) return { releases, next: releases[releases.length - 1]!.rev };
      const value = this.releases.get([env, rev]);
      if (value === undefined) continue;
      // One at a time, its large values by size and hash only (those kept apart are not even read).
      let whole = this.light(env, rev, value, q.elideAbove);
      if (q.key !== undefined) {
        whole = onlyKey(whole, q.key);
        if (whole.changes.length === 0) continue;
      }
      const release: StoredRelease = { ...whole, changes: whole.changes.slice(0, PAGE_CHANGES_AT_MOST) };
      if (whole.big !== undefined) release.big = whole.big.filter(([i]) => i < PAGE_CHANGES_AT_MOST);
      const shownBig = new Set((release.big ?? []).map(([i, side]) => `${i}:${side}`));
      let taken = 0;
      for (const [i, [k, before, after]] of release.changes.entries()) {
        const size = (v: string | null, side: 1 | 2): number => (shownBig.has(`${i}:${side}`) ? 40 : v === null ? 0 : Buffer.byteLength(v));
        const bytes = Buffer.byteLength(k) + size(before, 1) + size(after, 2);
        if (used + bytes > q.maxBytes && !(releases.length === 0 && taken === 0)) {
          used = q.maxBytes;
          break;
        }
        used += bytes;
        taken++;
      }
      if (taken < whole.changes.length) {
        release.changes = release.changes.slice(0, taken);
        if (release.big !== undefined) release.big = release.big.filter(([i]) => i < taken);
        release.more = whole.changes.length - taken;
        releases.push(release);
        return { releases, next: release.rev };
      }
      releases.push(release);
      await nextTurn();
    }
    return { releases };
  }

  async changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    this.db();
    return refs.map((ref) => {
      const record = this.releases.get([env, ref.rev]);
      const index = record?.changes.findIndex(([k]) => k === ref.key) ?? -1;
      if (record === undefined || index < 0) return null;
      const apart = record.out?.some(([i, side]) => i === index && side === ref.side) === true;
      return apart ? this.outValues.get([env, ref.rev, index, ref.side]) ?? null : record.changes[index]![ref.side];
    });
  }

  private releasesBetweenSync(env: string, current: EnvRecord, from: number, to: number): StoredRelease[] {
    const start = this.checkBetween(env, current, from, to);
    const out: StoredRelease[] = [];
    for (const { key, value } of this.releases.getRange({ start: [env, start], end: [env, to + 1] })) {
      out.push(this.stored(env, key[1], value));
    }
    return out;
  }

  /** The revisions of `env`'s releases with from < rev <= to, without decoding them. */
  private revsBetween(env: string, current: EnvRecord, from: number, to: number): number[] {
    const start = this.checkBetween(env, current, from, to);
    return [...this.releases.getKeys({ start: [env, start], end: [env, to + 1] })].map((key) => key[1]);
  }

  /** REVISION_NOT_FOUND when the range is not in the history kept; else the first revision of the range. */
  private checkBetween(env: string, current: EnvRecord, from: number, to: number): number {
    if (from < current.floor || from > this.headRev || to > this.headRev) {
      throw new RequestError(
        WireError.REVISION_NOT_FOUND,
        `revision ${from < current.floor ? from : to} of ${env} is not in the history kept (from ${current.floor} to ${this.headRev})`,
      );
    }
    return Math.max(from + 1, current.created);
  }

  /** Drops the oldest releases of `env` beyond the retention limit (inside the coming commit). */
  private pruned(env: string, next: EnvRecord): EnvRecord {
    const excess = next.kept - this.options.retainReleases;
    if (excess <= 0) return next;
    let floor = next.floor;
    let dropped = 0;
    for (const { key, value } of this.releases.getRange({ start: [env, next.created], end: [env, next.rev], limit: excess })) {
      for (const [i, side] of value.out ?? []) this.outValues.remove([env, key[1], i, side]);
      this.releases.remove(key);
      this.log.remove(key[1]);
      floor = key[1];
      dropped++;
    }
    return { ...next, floor, kept: next.kept - dropped };
  }

  /** A write whose request id was committed before is not made again: RequestReplay (under the commit lock). */
  private seenRequest(meta: CommitMeta): void {
    if (meta.requestId === undefined) return;
    const seen = this.requests.get(meta.requestId);
    if (seen !== undefined) throw new RequestReplay(seen);
  }

  /** Keeps the write's request id with its result and whose request it was (inside its transaction), and drops ids older than REQUEST_IDS_KEPT_MS. */
  private keepRequest(meta: CommitMeta, env: string, rev: number, changed: number): void {
    if (meta.requestId === undefined) return;
    this.requests.put(meta.requestId, { env, rev, changed, time: meta.time, author: meta.author, op: meta.op, digest: meta.requestDigest ?? '' });
    this.requestTimes.put([meta.time, meta.requestId], 1);
    for (const { key } of this.requestTimes.getRange({ end: [meta.time - REQUEST_IDS_KEPT_MS], limit: REQUEST_PRUNE_BATCH })) {
      this.requestTimes.remove(key);
      if (this.requests.get(key[1])?.time === key[0]) this.requests.remove(key[1]);
    }
  }

  private writeRelease(env: string, rev: number, record: ReleaseRecord): void {
    let out: BigValue[] | undefined;
    const changes = record.changes.map(([key, before, after], i): KeyChange => {
      const keep = (value: string | null, side: 1 | 2): string | null => {
        if (value === null || value.length <= OUT_OF_LINE_BYTES / 3) return value;
        const bytes = Buffer.byteLength(value);
        if (bytes <= OUT_OF_LINE_BYTES) return value;
        this.outValues.put([env, rev, i, side], value);
        (out ??= []).push([i, side, bytes, valueHash(value)]);
        return null;
      };
      return [key, keep(before, 1), keep(after, 2)];
    });
    this.releases.put([env, rev], out === undefined ? record : { ...record, changes, out });
    this.log.put(rev, env);
    this.meta.put('head', rev);
  }

  /** A release whole: its values kept apart read back in. */
  private stored(env: string, rev: number, r: ReleaseRecord): StoredRelease {
    const out = this.light(env, rev, r);
    if (r.out !== undefined) {
      out.changes = out.changes.map((c): KeyChange => [c[0], c[1], c[2]]);
      for (const [i, side] of r.out) out.changes[i]![side] = this.outValues.get([env, rev, i, side]) ?? null;
    }
    return out;
  }

  /**
   * A release with its values longer than `elideAbove` left out (StoredRelease.big): those kept apart are never
   * read for it (their size and hash are in the record); without `elideAbove`, the values kept apart are null.
   */
  private light(env: string, rev: number, r: ReleaseRecord, elideAbove?: number): StoredRelease {
    const out: StoredRelease = { env, rev, prev: r.prev, time: r.time, author: r.author, op: r.op, changes: r.changes };
    if (r.drop === true) out.drop = true;
    if (r.chain !== undefined && r.chain !== '') out.chain = r.chain;
    if (elideAbove === undefined) return out;
    const inline = elided(out, elideAbove);
    if (r.out === undefined) return inline;
    const big = [...(inline.big ?? [])];
    for (const entry of r.out) {
      const [i, side, bytes] = entry;
      if (bytes > elideAbove) big.push(entry);
      else inline.changes[i]![side] = this.outValues.get([env, rev, i, side]) ?? null;
    }
    big.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return big.length === 0 ? inline : { ...inline, big };
  }

  private readValues(env: string): Map<string, string> {
    const values = new Map<string, string>();
    const prefix = env.length + 1;
    for (const { key, value } of this.values.getRange(valueRange(env))) values.set(key.slice(prefix), value);
    return values;
  }

  private db(): RootDatabase {
    if (this.root === undefined) throw new RequestError(WireError.STORE_UNAVAILABLE, `store ${this.dir} is closed`);
    return this.root;
  }
}

/**
 * Value keys are "<env>\0<key>": environment names and keys never contain
 * control characters, so "<env>\0" .. "<env>\u0001" holds exactly one
 * environment's keys, whatever characters the keys use.
 */
const valueKey = (env: string, key: string): string => `${env}\u0000${key}`;
const valueRange = (env: string): { start: string; end: string } => ({ start: `${env}\u0000`, end: `${env}\u0001` });


/** The changes of `release` to `key` alone, with the values left out renumbered. */
function onlyKey(release: StoredRelease, key: string): StoredRelease {
  const index = release.changes.findIndex(([k]) => k === key);
  if (index < 0) return { ...release, changes: [], big: [] };
  const big = (release.big ?? []).filter(([i]) => i === index).map(([, side, bytes, sha]): BigValue => [0, side, bytes, sha]);
  const out: StoredRelease = { ...release, changes: [release.changes[index]!] };
  if (big.length > 0) out.big = big;
  else delete out.big;
  return out;
}

/** One server per data folder: a pid file, taken over only when its process is gone. */
function takeLock(file: string): number {
  try {
    const fd = fs.openSync(file, 'wx');
    fs.writeSync(fd, String(process.pid));
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = Number(fs.readFileSync(file, 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new VitefaError(
        LocalErrorCode.STORE_REFUSED,
        `data folder ${path.dirname(file)} is in use by server process ${pid}`,
      );
    }
    fs.rmSync(file, { force: true });
    return takeLock(file);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

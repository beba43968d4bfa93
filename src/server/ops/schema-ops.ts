import { MAX_VIOLATIONS, WireError, type AdminRequest, type ResultOf, type SchemaInfo, type SchemaMode, type SchemaVersion } from '../../protocol/index.js';
import { beforeDeadline } from '../../deadline.js';
import { envNotFound, RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import {
  activeSchema, matcher, MAX_SCHEMA_BYTES, patternFault, recordOf, recordText, SCHEMA_ENV, schemaFault, schemaKey, schemaName,
  type SchemaId, type SchemaRecord,
} from '../model/schemas/index.js';
import type { ReleaseLog } from '../releases/log.js';
import type { ServerState } from '../releases/state.js';
import { orReplay, replayRefusal, requestDigest, type RequestRecord } from '../store/requests.js';
import type { CommitMeta, Store, StoredRelease } from '../store/types.js';
import { SchemaRefusal, type SchemaChecks } from './schema-checks.js';
import { quoted } from './validate.js';
import type { WriteCall } from './writes.js';

type SchemaOf<K extends AdminRequest['op']> = Extract<AdminRequest, { op: K }>;

/** Checks of the data an enforced schema covers before it is committed, at most (writes committed after each check, each time). */
const COVERAGE_ATTEMPTS = 5;

/**
 * The schema operations (docs/schemas.md): schemas are the entries of SCHEMA_ENV, so each change
 * is a release — versioned, audited, kept in history and replicated as configuration is. Setting
 * one in enforce mode first checks everything it covers; in warn mode it reports what fails.
 */
export class SchemaOps {
  constructor(
    private readonly store: Store,
    private readonly state: ServerState,
    private readonly log: ReleaseLog,
    private readonly limits: ServerLimits,
    private readonly checks: SchemaChecks,
  ) {}

  async set(req: SchemaOf<'schema.set'>, call: WriteCall): Promise<ResultOf['schema.set']> {
    const id = idOf(req);
    const fault = schemaFault(req.schema);
    if (fault !== undefined) throw new RequestError(WireError.INVALID_VALUE, `the schema is refused: ${fault}`);
    let text: string;
    try {
      text = JSON.stringify(JSON.parse(req.schema));
    } catch {
      throw new RequestError(WireError.INVALID_VALUE, 'the schema is refused: it is not valid JSON');
    }
    return this.put(id, text, req.mode ?? 'enforce', call, req);
  }

  async rollback(req: SchemaOf<'schema.rollback'>, call: WriteCall): Promise<ResultOf['schema.rollback']> {
    const id = idOf(req);
    const [found] = await this.versions(id, req.version);
    if (found === undefined) throw new RequestError(WireError.REVISION_NOT_FOUND, `schema ${schemaName(id)} has no version ${req.version} in its kept history`);
    if (found.record.schema === undefined) throw new RequestError(WireError.BAD_REQUEST, `version ${req.version} of schema ${schemaName(id)} is its deletion: nothing to restore`);
    return this.put(id, found.record.schema, found.record.mode ?? 'enforce', call, req);
  }

  async del(req: SchemaOf<'schema.del'>, call: WriteCall): Promise<ResultOf['schema.del']> {
    const id = idOf(req);
    const current = this.record(id);
    if (current?.schema === undefined) throw noSchema(id);
    let version = 0;
    const done = await orReplay(this.store.commit(SCHEMA_ENV, meta(req, call), async (view) => {
      const held = recordOf(await view.get(schemaKey(id)));
      if (held?.schema === undefined) throw noSchema(id);
      version = held.version + 1;
      return [[schemaKey(id), recordText({ version, time: Date.now(), author: call.author })]];
    }));
    if (done.kind === 'replay') {
      checkReplay(done.record, req, call);
      return { ...idFields(id), version: this.record(id)?.version ?? 0, rev: done.record.rev, changed: done.record.changed, deleted: true, replayed: true };
    }
    await this.published(done.outcome, call.deadline);
    return { ...idFields(id), version, rev: done.outcome?.rev ?? 0, changed: done.outcome === null ? 0 : 1, deleted: true };
  }

  async get(req: SchemaOf<'schema.get'>): Promise<ResultOf['schema.get']> {
    const id = idOf(req);
    const record = req.version === undefined ? this.record(id) : (await this.versions(id, req.version))[0]?.record;
    if (record === undefined) throw req.version === undefined ? noSchema(id) : new RequestError(WireError.REVISION_NOT_FOUND, `schema ${schemaName(id)} has no version ${req.version} in its kept history`);
    if (record.schema === undefined) {
      throw req.version === undefined ? noSchema(id) : new RequestError(WireError.BAD_REQUEST, `version ${req.version} of schema ${schemaName(id)} is its deletion`);
    }
    return { ...infoOf(id, record), schema: record.schema };
  }

  async list(req: SchemaOf<'schema.list'>): Promise<ResultOf['schema.list']> {
    if (req.env !== undefined && !this.state.has(req.env)) throw envNotFound(req.env);
    const warned = new Map((await this.checks.warnings()).map((w) => [`${w.schema}\0${w.version}`, w.failing]));
    const schemas: SchemaInfo[] = [];
    for (const schema of this.checks.current()) {
      if (req.env !== undefined && !schema.envMatch(req.env)) continue;
      const record = this.record(schema)!;
      const info = infoOf(schema, record);
      if (schema.mode === 'warn') info.failing = warned.get(`${schemaName(schema)}\0${schema.version}`) ?? 0;
      schemas.push(info);
    }
    return { schemas };
  }

  async history(req: SchemaOf<'schema.history'>): Promise<ResultOf['schema.history']> {
    const id = idOf(req);
    const versions = await this.versions(id);
    if (versions.length === 0) throw noSchema(id);
    return {
      versions: versions.map(({ rev, record }): SchemaVersion => ({
        version: record.version, rev, time: record.time, author: record.author, bytes: Buffer.byteLength(record.schema ?? ''),
        ...(record.schema === undefined ? { deleted: true } : { mode: record.mode ?? 'enforce' }),
      })),
    };
  }

  /** Makes `text` in `mode` the schema's new version: an enforced one only once everything it covers passes it. */
  private async put(id: SchemaId, text: string, mode: SchemaMode, call: WriteCall, req: AdminRequest): Promise<ResultOf['schema.set']> {
    const compiled = this.checks.compile(text);
    const current = this.record(id);
    const schema = activeSchema(id, (current?.version ?? 0) + 1, mode, text, compiled);
    this.checkCounts(id, current);
    await this.ensureEnv(call);
    let coverage = await this.checks.coverage(schema, MAX_VIOLATIONS);
    let checkedAt = this.log.applied;
    let version = 0;
    for (let attempt = 1; ; attempt++) {
      if (mode === 'enforce' && coverage.failing > 0) {
        throw new SchemaRefusal(coverage.violations, coverage.total - coverage.violations.length, 'fails');
      }
      let moved = false;
      const done = await orReplay(this.store.commit(SCHEMA_ENV, meta(req, call), async (view) => {
        const held = recordOf(await view.get(schemaKey(id)));
        if (held?.schema === text && held.mode === mode) return [];
        // Data committed after the check was not checked: check again, after catching up (outside the lock).
        if (mode === 'enforce' && view.head > checkedAt) {
          if (attempt >= COVERAGE_ATTEMPTS) {
            throw new RequestError(WireError.LIMIT_EXCEEDED, `writes kept committing while the data the schema covers was checked (${attempt} tries): nothing was written; try again`);
          }
          moved = true;
          throw new Moved();
        }
        version = (held?.version ?? 0) + 1;
        return [[schemaKey(id), recordText({ version, mode, schema: text, time: Date.now(), author: call.author })]];
      })).catch((err: unknown) => {
        if (err instanceof Moved) return undefined;
        throw err;
      });
      if (done === undefined || moved) {
        await this.log.pull();
        coverage = await this.checks.coverage(schema, MAX_VIOLATIONS);
        checkedAt = this.log.applied;
        continue;
      }
      if (done.kind === 'replay') {
        checkReplay(done.record, req, call);
        return { ...idFields(id), version: this.record(id)?.version ?? 0, rev: done.record.rev, changed: done.record.changed, mode, replayed: true };
      }
      if (done.outcome === null) return { ...idFields(id), version: current?.version ?? 0, rev: this.state.rev(SCHEMA_ENV) ?? 0, changed: 0, mode };
      await this.published(done.outcome, call.deadline);
      return {
        ...idFields(id), version, rev: done.outcome.rev, changed: 1, mode,
        ...(mode === 'warn' && coverage.failing > 0 ? { failing: coverage.failing, warnings: coverage.violations } : {}),
      };
    }
  }

  /** The schemas kept, and those one environment matches, stay within their limits. */
  private checkCounts(id: SchemaId, current: SchemaRecord | undefined): void {
    if (current?.schema !== undefined) return;
    const all = this.checks.current();
    if (all.length >= this.limits.schemas) throw new RequestError(WireError.LIMIT_EXCEEDED, `${all.length} schemas are kept; the limit is ${this.limits.schemas} (limits.schemas)`);
    const covers = matcher(id.envPattern);
    for (const env of this.state.names()) {
      if (!covers(env)) continue;
      const count = all.filter((s) => s.envMatch(env)).length;
      if (count >= this.limits.schemasPerEnv) {
        throw new RequestError(WireError.LIMIT_EXCEEDED, `${count} schemas already apply to ${env}; the limit is ${this.limits.schemasPerEnv} (limits.schemasPerEnv)`);
      }
    }
  }

  /** The servers' own environment of schemas, made at the first schema set (by this server or, meanwhile, another). */
  private async ensureEnv(call: WriteCall): Promise<void> {
    if (this.state.has(SCHEMA_ENV)) return;
    try {
      const release = await this.store.createEnv(SCHEMA_ENV, { author: call.author, op: 'env.add', time: Date.now(), deadline: call.deadline });
      await this.published(release, call.deadline);
    } catch (err) {
      if (!(err instanceof RequestError && err.status === WireError.ENV_EXISTS)) throw err;
      await this.log.pull();
    }
  }

  /** The current version of a schema as this server holds it. */
  private record(id: SchemaId): SchemaRecord | undefined {
    return recordOf(this.state.values(SCHEMA_ENV)?.get(schemaKey(id)));
  }

  /**
   * Kept versions of a schema, newest first, with the revision that made it: all of them as far as
   * answerBytes of schema text go, or (`want`) only that version, read a page at a time.
   */
  private async versions(id: SchemaId, want?: number): Promise<{ rev: number; record: SchemaRecord }[]> {
    if (!this.state.has(SCHEMA_ENV)) return [];
    const out: { rev: number; record: SchemaRecord }[] = [];
    let bytes = 0;
    let before: number | undefined;
    for (;;) {
      const got = await this.store.historyPage(SCHEMA_ENV, {
        key: schemaKey(id), limit: 100, elideAbove: 2 * MAX_SCHEMA_BYTES, maxBytes: this.limits.answerBytes, ...(before === undefined ? {} : { before }),
      });
      let again: number | undefined;
      for (const release of got.releases) {
        // A page that ran out of bytes at this release keeps its header only: it is read again first on the next page.
        if (release.changes.length === 0 && (release.more ?? 0) > 0) {
          again = release.rev + 1;
          break;
        }
        const record = recordOf(release.changes[0]?.[2]);
        if (record === undefined) continue;
        if (want !== undefined) {
          if (record.version === want) return [{ rev: release.rev, record }];
          if (record.version < want) return [];
          continue;
        }
        bytes += record.schema?.length ?? 0;
        if (bytes > this.limits.answerBytes) return out;
        out.push({ rev: release.rev, record });
      }
      if (again !== undefined) before = again;
      else if (got.next === undefined) return out;
      else before = got.next;
    }
  }

  /** A release this server committed, published as writes.ts publishes its own (the answer waits for it until the deadline at most). */
  private async published(release: StoredRelease | null, deadline: number): Promise<void> {
    if (release === null) return;
    await beforeDeadline(this.log.committed(release).catch(() => undefined), deadline).catch(() => undefined);
  }
}

class Moved extends Error {}

function idOf(req: { envPattern: string; keyPattern: string; whole?: boolean }): SchemaId {
  const envFault = patternFault(req.envPattern, 'env');
  if (envFault !== undefined) throw new RequestError(WireError.BAD_REQUEST, `invalid environment pattern ${quoted(req.envPattern)}: ${envFault}`);
  const keyFault = patternFault(req.keyPattern, 'key');
  if (keyFault !== undefined) throw new RequestError(WireError.BAD_REQUEST, `invalid key pattern ${quoted(req.keyPattern)}: ${keyFault}`);
  return { envPattern: req.envPattern, keyPattern: req.keyPattern, whole: req.whole === true };
}

const idFields = (id: SchemaId): { envPattern: string; keyPattern: string; whole: boolean } => ({ envPattern: id.envPattern, keyPattern: id.keyPattern, whole: id.whole });

function infoOf(id: SchemaId, record: SchemaRecord): SchemaInfo {
  return { ...idFields(id), mode: record.mode ?? 'enforce', version: record.version, time: record.time, author: record.author, bytes: Buffer.byteLength(record.schema ?? '') };
}

/** A request id found kept: answered as a retry only when it is this very request by the same account (store/requests.ts). */
function checkReplay(kept: RequestRecord, req: AdminRequest, call: WriteCall): void {
  const refused = replayRefusal(kept, { rid: call.requestId ?? '', author: call.author, op: req.op, env: SCHEMA_ENV, digest: requestDigest(req) });
  if (refused !== undefined) throw new RequestError(WireError.BAD_REQUEST, refused);
}

const noSchema = (id: SchemaId): RequestError => new RequestError(WireError.NO_SUCH_NAME, `no schema ${schemaName(id)} (schema list shows those kept)`);

function meta(req: AdminRequest, call: WriteCall): CommitMeta {
  return { author: call.author, op: req.op, time: Date.now(), deadline: call.deadline, ...(call.requestId === undefined ? {} : { requestId: call.requestId, requestDigest: requestDigest(req) }) };
}

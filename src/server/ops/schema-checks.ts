import { createHash } from 'node:crypto';
import { MAX_VIOLATIONS, violationLines, WireError, type KeyChange, type SchemaViolation } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import type { ServerLimits } from '../limits.js';
import {
  activeSchema, CompiledCache, coverageOf, itemBytes, itemsOf, recordOf, runCheck, SCHEMA_ENV, schemaIdOf, schemaName, violationOf,
  type ActiveSchema, type CheckItem, type Found,
} from '../model/schemas/index.js';
import type { ServerState } from '../releases/state.js';
import { CheckTimedOut, type BulkPool } from './validate-pool.js';
import type { CheckTask } from './validate-worker.js';
import { NO_ACCESS } from './layer-reads.js';

/** Bytes of values one write checks on the event loop at most (unguarded schemas only); more go to the thread. */
const INLINE_BYTES = 256 * 1024;

/** A violation as a caller who may not read its environment is shown it: the schema and the rule's keyword, not where or what (NO_ACCESS). */
export function shownTo(v: SchemaViolation, reads: (env: string) => boolean): SchemaViolation {
  // Its message may name a key of that view (an extra property of a whole view): the rule's keyword says enough.
  return reads(v.env) ? v : { ...v, env: NO_ACCESS, key: '', path: '', message: 'fails the schema' };
}

/** A refusal for schemas: SCHEMA_VIOLATION with its violations (the Error frame's `v` and `more`). */
export class SchemaRefusal extends RequestError {
  /** The same refusal as a caller who reads only some environments is shown it. */
  shownTo(reads: (env: string) => boolean): SchemaRefusal {
    return new SchemaRefusal(this.violations.map((v) => shownTo(v, reads)), this.more, this.lead);
  }

  constructor(readonly violations: SchemaViolation[], readonly more: number, readonly lead = 'refused') {
    super(WireError.SCHEMA_VIOLATION, [`not applied: ${violations.length + more} schema violation${violations.length + more === 1 ? '' : 's'}`,
      ...violationLines(lead, violations, more, MAX_VIOLATIONS)].join('\n'), { details: { v: violations.slice(0, MAX_VIOLATIONS), more: more + Math.max(0, violations.length - MAX_VIOLATIONS) } });
  }
}

/**
 * Checks a write's views must wait for: they go to the thread, outside the store's lock, and the
 * commit is tried again with their verdicts known (ConfigWrites.write).
 */
export class ChecksPending extends Error {
  constructor(readonly items: CheckItem[]) {
    super(`${items.length} schema checks to run on the thread`);
  }
}

/** Verdicts of one write's checks, kept while it is tried again: by schema, environment, key and value. */
export type Verdicts = Map<string, Found[]>;

/** What a write's views gave: violations of enforced schemas refuse it; those of warned ones come back with its answer. */
export interface Checked {
  warnings: SchemaViolation[];
  warningsMore: number;
}

/**
 * The schemas in force and the checks of values against them (docs/schemas.md). The schemas are the
 * entries of the servers' own environment SCHEMA_ENV, read from this server's state (or, when the
 * store is ahead of it, as the store holds them under the write's lock); each version is compiled
 * once. Checks that are cheap by construction (no pattern, reference, uniqueItems or unbounded
 * format) and small run at once; the others run on the bulk pool's thread under schemaCheckMs.
 */
export class SchemaChecks {
  private readonly compiled = new CompiledCache();
  private cached: { rev: number; schemas: ActiveSchema[] } | undefined;
  /** Warn-mode failures by schema version and environment revision (status). */
  private readonly failing = new Map<string, { rev: number; count: number }>();

  constructor(private readonly state: ServerState, private readonly pool: BulkPool, private readonly limits: ServerLimits) {}

  /** The schemas in force as this server holds them. */
  current(): ActiveSchema[] {
    const rev = this.state.rev(SCHEMA_ENV) ?? 0;
    if (this.cached?.rev !== rev) this.cached = { rev, schemas: this.fromEntries(this.state.values(SCHEMA_ENV) ?? new Map()) };
    return this.cached.schemas;
  }

  /** The schemas in force in the given entries of SCHEMA_ENV (as a store holds them). */
  fromEntries(entries: ReadonlyMap<string, string>): ActiveSchema[] {
    const out: ActiveSchema[] = [];
    for (const [key, text] of entries) {
      const id = schemaIdOf(key);
      const record = recordOf(text);
      if (id === undefined || record?.schema === undefined) continue;
      try {
        out.push(activeSchema(id, record.version, record.mode ?? 'enforce', record.schema, this.compiled.get(record.schema)));
      } catch {
        // Compiled when it was set, by this build or another: one that no longer compiles checks nothing rather than refusing every write.
      }
    }
    return out.sort((a, b) => (a.envPattern + a.keyPattern < b.envPattern + b.keyPattern ? -1 : 1));
  }

  /** Compiles a schema's text (it is then cached for the writes it checks); RequestError with ajv's reason when it is refused. */
  compile(text: string): ActiveSchema['compiled'] {
    try {
      return this.compiled.get(text);
    } catch (err) {
      throw new RequestError(WireError.INVALID_VALUE, `the schema is refused: ${(err as Error).message}`);
    }
  }

  /**
   * Checks the changes of merged views a write makes (each changed key a schema covers, each
   * whole view a whole schema covers) against `schemas`. Verdicts found before (on the thread) are
   * taken as they are; checks that must run on the thread throw ChecksPending unless `onThread`
   * (then they run here, under the caller's lock). Violations of enforced schemas throw
   * SchemaRefusal; those of warned ones are returned.
   */
  async checkViews(
    schemas: readonly ActiveSchema[], views: ReadonlyMap<string, readonly KeyChange[]>, viewAfter: (env: string) => ReadonlyMap<string, string>,
    verdicts: Verdicts, onThread: boolean, who = '',
  ): Promise<Checked> {
    if (schemas.length === 0) return { warnings: [], warningsMore: 0 };
    const items = itemsOf(schemas, views, viewAfter);
    return this.judge(items, verdicts, onThread, who);
  }

  /** Every value `schema` covers, as this server holds the views: its violations (at most `max` kept), and how many there are. */
  async coverage(schema: ActiveSchema, max: number): Promise<{ violations: SchemaViolation[]; total: number; failing: number; items: number }> {
    const items: CheckItem[] = [];
    // One at a time: an environment may hold a million keys, more than a call's arguments may be.
    for (const env of this.state.names()) for (const item of coverageOf(schema, env, this.state.values(env) ?? new Map())) items.push(item);
    const founds = await this.foundOf(items);
    const violations: SchemaViolation[] = [];
    let failing = 0;
    let total = 0;
    for (const [i, item] of items.entries()) {
      const found = founds[i];
      if (found.length === 0) continue;
      failing++;
      total += found.length;
      for (const f of found) if (violations.length < max) violations.push(violationOf(item, f));
    }
    return { violations, total, failing, items: items.length };
  }

  /** Keys (or views, for whole schemas) that fail each warn-mode schema now (status): worked out again only for views that changed. */
  async warnings(): Promise<{ schema: string; version: number; failing: number }[]> {
    const out: { schema: string; version: number; failing: number }[] = [];
    for (const schema of this.current()) {
      if (schema.mode !== 'warn') continue;
      let failing = 0;
      for (const env of this.state.names()) {
        if (!schema.envMatch(env)) continue;
        const rev = this.state.rev(env) ?? 0;
        const at = `${schema.compiled.digest}\0${schema.envPattern}\0${schema.keyPattern}\0${schema.whole}\0${env}`;
        let known = this.failing.get(at);
        if (known?.rev !== rev) {
          const count = (await this.foundOf(coverageOf(schema, env, this.state.values(env) ?? new Map()))).filter((found) => found.length > 0).length;
          known = { rev, count };
          this.failing.set(at, known);
        }
        failing += known.count;
      }
      if (failing > 0) out.push({ schema: schemaName(schema), version: schema.version, failing });
    }
    if (this.failing.size > 100_000) this.failing.clear();
    return out;
  }

  /** Runs checks on the thread, under the time limit, and keeps their verdicts (`who`: the account whose write asks; its checks go one at a time). */
  async runOnThread(items: readonly CheckItem[], verdicts: Verdicts, who = ''): Promise<void> {
    const todo = items.filter((i) => !verdicts.has(verdictKey(i)));
    if (todo.length === 0) return;
    const found = await this.onThread(todo, who);
    todo.forEach((item, i) => verdicts.set(verdictKey(item), found[i]));
  }

  /**
   * What each item found, checked on a thread: within schemaCheckMs when a check may stall
   * (`guarded`), within writeTimeoutMs when every check is linear in what it checks. One that runs
   * out of its time fails with keyword `timeout`, once per schema (its first item): nothing of it is
   * known to pass, and its schema's mode decides (refused when enforced, a warning when warned).
   */
  private async onThread(todo: readonly CheckItem[], who = ''): Promise<Found[][]> {
    const texts: string[] = [];
    const index = new Map<string, number>();
    const task: CheckTask = { schemas: texts, s: [], keys: [], values: [], wholes: [] };
    todo.forEach((item, i) => {
      let s = index.get(item.schema.text);
      if (s === undefined) {
        s = texts.push(item.schema.text) - 1;
        index.set(item.schema.text, s);
      }
      task.s.push(s);
      task.keys.push(item.key ?? null);
      task.values.push(item.value ?? null);
      if (item.value === undefined) task.wholes.push([i, item.entries ?? []]);
    });
    const guarded = todo.some((i) => mayStall(i));
    const ms = guarded ? this.limits.schemaCheckMs : Math.max(this.limits.schemaCheckMs, this.limits.writeTimeoutMs);
    const found: Found[][] = todo.map(() => []);
    try {
      for (const [i, f] of await this.pool.check(task, ms, who)) found[i] = f;
    } catch (err) {
      if (!(err instanceof CheckTimedOut)) throw err;
      const first = new Set<string>();
      todo.forEach((item, i) => {
        if (first.has(item.schema.text)) return;
        first.add(item.schema.text);
        found[i] = [{ key: item.key ?? '', path: '', keyword: 'timeout', message: `validation timed out after ${ms} ms` }];
      });
    }
    return found;
  }

  private async judge(items: readonly CheckItem[], verdicts: Verdicts, onThread: boolean, who: string): Promise<Checked> {
    // Guarded checks (that may run long) never run under the lock unless `onThread`: their verdicts are found first, outside it.
    const guarded = items.filter((i) => mayStall(i));
    const unknown = guarded.filter((i) => !verdicts.has(verdictKey(i)));
    if (unknown.length > 0) {
      if (!onThread) throw new ChecksPending(unknown);
      await this.runOnThread(unknown, verdicts, who);
    }
    // The others take time in proportion to what they check: small ones here, large ones on the thread (under the lock).
    const results: [CheckItem, Found[]][] = [];
    const large: CheckItem[] = [];
    let inlineBytes = 0;
    for (const item of items) {
      if (mayStall(item)) {
        results.push([item, verdicts.get(verdictKey(item))!]);
        continue;
      }
      const bytes = itemBytes(item);
      if (inlineBytes + bytes <= INLINE_BYTES) {
        inlineBytes += bytes;
        results.push([item, runCheck(item.schema.compiled.validate, item)]);
      } else {
        large.push(item);
      }
    }
    if (large.length > 0) {
      const found = await this.onThread(large, who);
      large.forEach((item, i) => results.push([item, found[i]]));
    }
    const refused: SchemaViolation[] = [];
    const warned: SchemaViolation[] = [];
    let refusedMore = 0;
    let warnedMore = 0;
    for (const [item, found] of results) {
      for (const f of found) {
        const list = item.schema.mode === 'enforce' ? refused : warned;
        if (list.length < MAX_VIOLATIONS) list.push(violationOf(item, f));
        else if (item.schema.mode === 'enforce') refusedMore++;
        else warnedMore++;
      }
    }
    if (refused.length > 0) throw new SchemaRefusal(refused, refusedMore);
    return { warnings: warned, warningsMore: warnedMore };
  }

  /** What each item found: those that are cheap and small here, the others on the thread. */
  private async foundOf(items: readonly CheckItem[]): Promise<Found[][]> {
    const away = items.filter((i) => !this.inline(i));
    const fromThread = away.length === 0 ? [] : await this.onThread(away);
    let next = 0;
    return items.map((item) => (this.inline(item) ? runCheck(item.schema.compiled.validate, item) : fromThread[next++]));
  }

  /** Whether an item is checked on the event loop: its schema is cheap by construction, and it is small. */
  private inline(item: CheckItem): boolean {
    return !mayStall(item) && itemBytes(item) <= INLINE_BYTES;
  }
}

/**
 * Work of one check past which it is handled as one that may stall (outside the lock, within
 * schemaCheckMs), whatever its keywords: a schema's nodes, each applied to the values at its place,
 * cost up to its size times the value's (a 64 KiB schema of nested anyOf and items over a 256 KiB
 * array is seconds of work, with no pattern or reference in it).
 */
const STALL_WORK = 1 << 26;

/** Whether a check may take long: its schema is guarded (CompiledSchema.guarded), or schema and value together are large. */
function mayStall(item: CheckItem): boolean {
  return item.schema.compiled.guarded || item.schema.text.length * itemBytes(item) > STALL_WORK;
}

/** Where a verdict is kept: the schema's text, the environment, the key and the value checked. */
function verdictKey(item: CheckItem): string {
  const value = item.value ?? JSON.stringify(item.entries ?? []);
  const digest = value.length > 256 ? createHash('sha1').update(value).digest('base64') : value;
  return `${item.schema.compiled.digest}\0${item.schema.whole}\0${item.env}\0${item.key ?? ''}\0${digest}`;
}

import { WireError, type AdminRequest, type Change, type KeyChange, type PlanResult, type WriteResult } from '../../protocol/index.js';
import { beforeDeadline } from '../../deadline.js';
import { envNotFound, keyNotFound, RequestError } from '../errors.js';
import { hasMarks, mergedChanges } from '../model/layers/index.js';
import { keyChangesFrom } from '../store/changes.js';
import { LayerReads, NO_ACCESS } from './layer-reads.js';
import type { ServerLimits } from '../limits.js';
import { rollbackChanges } from '../releases/history.js';
import type { ReleaseLog } from '../releases/log.js';
import type { ServerState } from '../releases/state.js';
import { orReplay, replayRefusal, requestDigest, type RequestRecord } from '../store/requests.js';
import type { CommitMeta, CommitPlan, EnvView, Store, StoredRelease } from '../store/types.js';
import { SCHEMA_ENV, type ActiveSchema } from '../model/schemas/index.js';
import { ChecksPending, SchemaChecks, SchemaRefusal, shownTo, type Checked, type Verdicts } from './schema-checks.js';
import { clearValue, jsonEqual, mergeValue, type Json } from '../model/merge.js';
import { checkSizes, limited, MAX_MARKED_ENTRIES, ownParts, planLayered, withMark, withValue } from './layer-plan.js';
import { checkEnvName, checkKey, parseValue } from './validate.js';
import { BulkPool } from './validate-pool.js';

/** Works out the own changes of a write from the environment's own entries, under the store's lock. */
type OwnPlanner = (view: EnvView) => Promise<Change[]>;

/** Who writes, and by when (ms since the epoch) the answer is due. */
export interface WriteCall {
  author: string;
  /** The request id it came with (Request.rid), if any. */
  requestId?: string;
  deadline: number;
  /** Whether the caller may read `env` (absent: every environment). */
  reads?: (env: string) => boolean;
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
  /** The schemas in force, and the checks of values against them. */
  readonly schemas: SchemaChecks;

  constructor(
    private readonly store: Store,
    private readonly state: ServerState,
    private readonly log: ReleaseLog,
    private readonly limits: ServerLimits,
  ) {
    this.bulk = new BulkPool(limits);
    this.schemas = new SchemaChecks(state, this.bulk, limits);
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
    // The own value is replaced; unset marks the entry holds stay (`del` removes them).
    return this.write(req, call, async (view) => [[key, withValue(await view.get(key), text)]]);
  }

  /** Removes the environment's own entry of the key, its unset marks included: what its layers give shows again. */
  del(req: WriteOf<'del'>, call: WriteCall): Promise<WriteResult> {
    return this.write(req, call, async (view) => {
      if ((await view.get(req.key)) === undefined) {
        if (this.state.values(req.env)?.has(req.key) === true) {
          throw new RequestError(WireError.KEY_NOT_FOUND, `${req.env} has no entry of its own for ${req.key}: its value comes from its layers (\`unset ${req.env} ${req.key}\` hides it here)`);
        }
        throw keyNotFound(req.env, req.key);
      }
      return [[req.key, null]];
    });
  }

  merge(req: WriteOf<'merge'>, call: WriteCall): Promise<WriteResult> {
    const key = checkKey(req.key, this.limits);
    const patch = parseValue(req.value, key, this.limits).value;
    return this.write(req, call, async (view) => {
      const { entry, rewrite } = ownParts(await view.get(key));
      const before = entry.text === undefined ? undefined : (JSON.parse(entry.text) as Json);
      const after = limited(() => mergeValue(before, patch));
      return before !== undefined && jsonEqual(before, after) ? [] : [[key, rewrite(JSON.stringify(after))]];
    });
  }

  clear(req: WriteOf<'clear'>, call: WriteCall): Promise<WriteResult> {
    return this.write(req, call, async (view) => {
      const { entry, rewrite } = ownParts(await view.get(req.key));
      if (entry.text === undefined) return [];
      const result = limited(() => clearValue(JSON.parse(entry.text!) as Json, req.path));
      if (!result.changed) return [];
      return [[req.key, rewrite(result.value === undefined ? undefined : JSON.stringify(result.value))]];
    });
  }

  /** Hides, in this environment's view, what its layers give at the key (or a path of it): an own entry, kept until `del`. */
  unset(req: WriteOf<'unset'>, call: WriteCall): Promise<WriteResult> {
    const key = checkKey(req.key, this.limits);
    return this.write(req, call, async (view) => {
      const before = await view.get(key);
      // Marks are kept with the entry: bounded as a value is, and in how many entries of one environment hold them.
      if ((before === undefined || !hasMarks(before)) && (this.state.marks(req.env) ?? 0) >= MAX_MARKED_ENTRIES) {
        throw new RequestError(WireError.INVALID_VALUE, `${req.env} already holds unset marks in ${MAX_MARKED_ENTRIES} entries, the most one environment may`);
      }
      return [[key, withMark(before, req.path)]];
    });
  }

  /** Builds the environment from `parents` (lowest first), then its own entries; [] stands it alone again. */
  layers(req: WriteOf<'env.layers'>, call: WriteCall): Promise<WriteResult> {
    const parents = req.parents.map((p) => checkEnvName(p, this.limits));
    // Layering on an environment makes its values part of this one's view: only what the caller reads.
    const hidden = parents.filter((p) => call.reads !== undefined && !call.reads(p));
    if (hidden.length > 0) throw new RequestError(WireError.FORBIDDEN, `${call.author} may not read ${hidden.join(', ')}: an environment can only be built on environments its writer reads`);
    return this.write(req, call, (view) => planLayered(view, this.state, this.limits, [], parents));
  }

  async apply(req: WriteOf<'apply'>, call: WriteCall): Promise<WriteResult> {
    if (req.entries.length > this.limits.keysPerRelease) {
      throw new RequestError(WireError.INVALID_VALUE, `at most ${this.limits.keysPerRelease} keys per release`);
    }
    const written = meta(req, call);
    const planned: Change[] = await this.bulk.plan(req.entries);
    return this.write(req, call, (view) => applyChanges(view, planned, req.replace), written);
  }

  /**
   * Restores the environment's own entries, and its parent list, as they were at `rev`. A layered
   * view may still differ from what it was then (a layer changed since): the answer names each key
   * that does, with the layer whose entry makes it differ.
   */
  async rollback(req: WriteOf<'rollback'>, call: WriteCall, layers: LayerReads): Promise<WriteResult> {
    // Worked out before the commit takes its lock, so other writes go on meanwhile — from what this
    // server holds, at best, within the write's time: the store decides under the lock (the environment,
    // the revision, the request id), and the changes are worked out again there if a release came between.
    const current = this.state.rev(req.env);
    const early = current === undefined || req.rev > current
      ? undefined
      : await untilDeadline(this.store.releasesBetween(req.env, req.rev, current).then((releases) => rollbackChanges(releases)), call.deadline);
    const now = [...(this.state.parents(req.env) ?? [])];
    const then = current === undefined || req.rev > current ? now : await layers.parentsAt(req.env, req.rev);
    const parents = then.join('\n') === now.join('\n') ? undefined : then;
    // Restoring a parent list is building on those parents: only on what the caller reads (as env layers).
    const hidden = (parents ?? []).filter((p) => call.reads !== undefined && !call.reads(p));
    if (hidden.length > 0) throw new RequestError(WireError.FORBIDDEN, `${call.author} may not read ${hidden.join(', ')}: rolling ${req.env} back to revision ${req.rev} would build it on them`);
    const result = await this.write(req, call, async (view) => {
      if (req.rev > view.rev) {
        throw new RequestError(WireError.REVISION_NOT_FOUND, `revision ${req.rev} is after ${req.env}'s current revision ${view.rev}`);
      }
      // Undoing the release that created the environment would empty it, not restore it: no state of it to go back to.
      if (req.rev < view.created) {
        throw new RequestError(WireError.REVISION_NOT_FOUND, `${req.env} did not exist at revision ${req.rev}: its first revision is ${view.created}`);
      }
      const own = view.rev === current && early !== undefined ? early : await rollbackChanges(await view.releasesAfter(req.rev));
      return planLayered(view, this.state, this.limits, own, parents);
    });
    if (result.replayed !== true && (now.length > 0 || then.length > 0)) {
      const differs = await untilDeadline(layers.stillDiffering(req.env, req.rev), call.deadline);
      const reads = call.reads ?? (() => true);
      if (differs !== undefined && differs.length > 0) result.differs = differs.map((d) => (reads(d.layer) || !this.state.has(d.layer) ? d : { ...d, layer: NO_ACCESS }));
    }
    return result;
  }

  /**
   * What `apply` with these arguments would change, worked out from what this server holds and
   * written nowhere: the environment's own entries added, changed and removed, and every
   * environment whose merged view would change, with its number of keys.
   */
  async plan(req: WriteOf<'plan'>, call: WriteCall): Promise<PlanResult> {
    if (req.entries.length > this.limits.keysPerRelease) {
      throw new RequestError(WireError.INVALID_VALUE, `at most ${this.limits.keysPerRelease} keys per release`);
    }
    const own = this.state.own(req.env);
    if (own === undefined) throw envNotFound(req.env);
    const planned = ownChanges(own, await this.bulk.plan(req.entries), req.replace);
    const changes = keyChangesFrom(planned, (key) => own.get(key));
    const merged = limited(() => mergedChanges(this.state.parentMap(), {
      own: (env, key) => this.state.own(env)?.get(key),
      keys: (env) => this.state.own(env)?.keys() ?? [],
    }, { env: req.env, changes: changes.map(([key, , after]) => [key, after] as const) }));
    const reads = call.reads ?? (() => true);
    const byKind = (test: (before: string | null, after: string | null) => boolean): string[] =>
      changes.filter(([, before, after]) => test(before, after)).map(([key]) => key);
    return {
      env: req.env, rev: this.state.rev(req.env)!,
      added: byKind((before) => before === null),
      changed: byKind((before, after) => before !== null && after !== null),
      removed: byKind((before, after) => before !== null && after === null),
      views: planViews(req.env, merged, reads),
      ...(await this.verdicts(merged, call)),
    };
  }

  /** What the schemas in force say of a plan's views: the violations that would refuse it, and the warnings it would be written with. */
  private async verdicts(views: ReadonlyMap<string, KeyChange[]>, call: WriteCall): Promise<Partial<PlanResult>> {
    try {
      const checked = await this.schemas.checkViews(this.schemas.current(), views, (name) => viewAfter(name, views, this.state), new Map(), true);
      return warningsOf(checked, call.reads);
    } catch (err) {
      if (!(err instanceof SchemaRefusal)) throw err;
      const shown = call.reads === undefined ? err : err.shownTo(call.reads);
      return { violations: shown.violations, ...(shown.more > 0 ? { violationsMore: shown.more } : {}) };
    }
  }

  private async write(
    req: WriteOf<'set' | 'del' | 'merge' | 'clear' | 'unset' | 'apply' | 'rollback' | 'env.layers'>,
    call: WriteCall, plan: OwnPlanner | ((view: EnvView) => ReturnType<typeof planLayered>), written = meta(req, call),
  ): Promise<WriteResult> {
    const env = req.env;
    // del, clear and unset write no value: what they uncover from the layers below is not a value grown by a write.
    const allowGrowth = req.op === 'del' || req.op === 'clear' || req.op === 'unset' || ('allowGrowth' in req && req.allowGrowth === true);
    // Checks that must run on the schema thread run outside the store's lock, and the commit is tried again with their verdicts.
    const verdicts: Verdicts = new Map();
    let checked: Checked = { warnings: [], warningsMore: 0 };
    for (let attempt = 0; ; attempt++) {
      try {
        // The store reports a missing environment itself, under its lock (another server may have just created it).
        const done = await orReplay(this.store.commit(env, written, async (view) => {
          const own = await plan(view);
          const planned = Array.isArray(own) ? await planLayered(view, this.state, this.limits, own) : own;
          const views = viewsOf(env, planned, this.state);
          checkSizes(views, this.limits, allowGrowth, call.reads);
          checked = await this.schemas.checkViews(await this.schemasAt(view), views, (name) => viewAfter(name, views, this.state), verdicts, attempt >= CHECK_ATTEMPTS, call.author);
          return planned;
        }));
        if (done.kind === 'replay') return this.replayed(done.record, req, call);
        const release = done.outcome;
        if (release === null) return { env, rev: this.state.rev(env) ?? 0, changed: 0 };
        await this.published(release, call.deadline);
        return { env, rev: release.rev, changed: release.changes.length, ...warningsOf(checked, call.reads) };
      } catch (err) {
        if (err instanceof SchemaRefusal && call.reads !== undefined) throw err.shownTo(call.reads);
        if (!(err instanceof ChecksPending) || attempt >= CHECK_ATTEMPTS) throw err;
        await untilDeadline(this.schemas.runOnThread(err.items, verdicts, call.author), call.deadline);
      }
    }
  }

  /** The schemas in force at the write's lock: this server's, or the store's when another server committed since this one applied. */
  private async schemasAt(view: EnvView): Promise<ActiveSchema[]> {
    if (view.head <= this.log.applied) return this.schemas.current();
    const own = await view.ownOf([SCHEMA_ENV]);
    return this.schemas.fromEntries(own.get(SCHEMA_ENV) ?? new Map());
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
}

/** Commits tried before the checks that must run on the thread run under the store's lock instead (a schema or a view moved each time). */
const CHECK_ATTEMPTS = 2;

/** The merged views a plan changes, with each key's value before and after (an environment standing alone: its own changes). */
export function viewsOf(env: string, planned: Change[] | CommitPlan, state: ServerState): Map<string, KeyChange[]> {
  if (!Array.isArray(planned) && planned.merged !== undefined) return planned.merged;
  const changes = Array.isArray(planned) ? planned : planned.changes;
  const values = state.values(env);
  return new Map([[env, changes.map(([key, after]): KeyChange => [key, values?.get(key) ?? null, after])]]);
}

/** An environment's merged view after the changes (for the schemas that check whole views). */
function viewAfter(env: string, views: ReadonlyMap<string, readonly KeyChange[]>, state: ServerState): ReadonlyMap<string, string> {
  const after = new Map(state.values(env) ?? []);
  for (const [key, , value] of views.get(env) ?? []) {
    if (value === null) after.delete(key);
    else after.set(key, value);
  }
  return after;
}

/** The warnings of warn-mode schemas in a write's answer (of views the writer may not read, only the schema and the rule). */
function warningsOf(checked: Checked, reads: ((env: string) => boolean) | undefined): Pick<WriteResult, 'warnings' | 'warningsMore'> {
  if (checked.warnings.length === 0) return {};
  const warnings = reads === undefined ? checked.warnings : checked.warnings.map((v) => shownTo(v, reads));
  return { warnings, ...(checked.warningsMore > 0 ? { warningsMore: checked.warningsMore } : {}) };
}

/** What the store keeps of a write: who, what, when, by when, and its request id with the request's digest. */
function meta(req: AdminRequest, call: WriteCall): CommitMeta {
  return {
    author: call.author, op: req.op, time: Date.now(), deadline: call.deadline,
    ...(call.requestId === undefined ? {} : { requestId: call.requestId, requestDigest: requestDigest(req) }),
  };
}

/**
 * The views a plan changes: the environment written first, then each other one it changes, by
 * name; those the caller may not read summed into one NO_ACCESS entry at the end.
 */
function planViews(env: string, merged: ReadonlyMap<string, readonly unknown[]>, reads: (env: string) => boolean): PlanResult['views'] {
  const views: PlanResult['views'] = [];
  let hidden = 0;
  for (const [name, list] of merged) {
    if (name !== env && list.length === 0) continue;
    if (reads(name)) views.push({ env: name, changed: list.length });
    else hidden += list.length;
  }
  if (hidden > 0) views.push({ env: NO_ACCESS, changed: hidden });
  return views;
}

/**
 * The own changes of an apply: each key's new value (the unset marks of its entry kept), and with
 * `replace` the removal of every own value not listed (an entry that only hides stays).
 */
async function applyChanges(view: EnvView, planned: Change[], replace: boolean): Promise<Change[]> {
  return ownChanges(await view.entries(), planned, replace);
}

/** The own changes of an apply to the own entries `own`. */
function ownChanges(own: ReadonlyMap<string, string>, planned: Change[], replace: boolean): Change[] {
  const out: Change[] = planned.map(([key, text]) => [key, text === null ? null : withValue(own.get(key), text)]);
  if (!replace) return out;
  const wanted = new Set(planned.map(([k]) => k));
  for (const [key, text] of own) {
    if (wanted.has(key)) continue;
    const { entry, rewrite } = ownParts(text);
    if (entry.text !== undefined) out.push([key, rewrite(undefined)]);
  }
  return out;
}

/** What `work` gives if it settles by `deadline` (ms since the epoch); undefined if it fails or is late (it runs on, unheeded). */
function untilDeadline<T>(work: Promise<T>, deadline: number): Promise<T | undefined> {
  return beforeDeadline(work, deadline).catch(() => undefined);
}

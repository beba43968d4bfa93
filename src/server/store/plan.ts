import { WireError, type KeyChange } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import type { CommitPlan, Planner } from './types.js';

/** What a planner gave, as a plan: a list of changes is a plan of those changes alone. */
export function planOf(planned: Awaited<ReturnType<Planner>>): CommitPlan {
  return Array.isArray(planned) ? { changes: planned } : planned;
}

/** Whether `plan` gives `env` a parent list other than `current` (the same names in the same order are no change). */
export function parentsChange(plan: CommitPlan, current: readonly string[]): boolean {
  const next = plan.parents;
  return next !== undefined && (next.length !== current.length || next.some((name, i) => name !== current[i]));
}

/**
 * The environments other than `env` whose merged view the plan changes, by name, with those changes:
 * each gets a `via` release at the write's revision.
 */
export function viaTargets(plan: CommitPlan, env: string): [string, KeyChange[]][] {
  const out: [string, KeyChange[]][] = [];
  for (const [dep, changes] of plan.merged ?? []) if (dep !== env && changes.length > 0) out.push([dep, changes]);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A plan that names an environment that does not exist: the planner is wrong, not the request. */
export function missingDependent(env: string, dep: string): Error {
  return new Error(`the plan of a write to ${env} changes the view of environment ${dep}, which does not exist`);
}

/** The refusal to delete `env` while `names` (not empty) are built on it: NOT_APPLICABLE, nothing written. */
export function builtOn(env: string, names: string[]): RequestError {
  const sorted = [...names].sort();
  return new RequestError(
    WireError.NOT_APPLICABLE,
    `cannot delete ${env}: ${sorted.join(', ')} ${sorted.length === 1 ? 'is' : 'are'} built on it (remove it from their layers first: env layers ENV …)`,
  );
}

/** The environments of `layout` (each live one's parent list) built directly on `env`. */
export function dependentsOf(layout: Iterable<[string, readonly string[]]>, env: string): string[] {
  const out: string[] = [];
  for (const [name, parents] of layout) if (parents.includes(env)) out.push(name);
  return out;
}

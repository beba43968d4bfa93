import { stripVTControlCharacters } from 'node:util';
import { printable } from '../printable.js';
import { violationLines, type AdminRequest, type EnvShowResult, type ExplainLeaf, type PlanResult, type WriteResult } from '../protocol/index.js';

/*
 * How the answers about layered environments print for people: the
 * provenance of a value (`get --explain`), an apply's plan (`apply
 * --dry-run`), an environment's layers (`env layers --show`), and what a
 * rollback could not restore. Names and paths arrive as the server sent
 * them; every one is shown with its control characters escaped.
 */

/** The colours these lines use (format.ts's Style). */
interface Paint {
  dim(text: string): string;
  bold(text: string): string;
  key(text: string): string;
}

/** Shown instead of an environment the caller may not read (the server's word). */
const NO_ACCESS = '(no access)';
/** Names listed in a plan's line before it only counts the rest. */
const NAMES_LISTED = 10;
const ARROW = ' \u2192 ';
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A leaf's path, JSONPath-like: `a.b[2]`, `["odd key"].c`, `(value)` for the value itself. */
export function leafPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(value)';
  let out = '';
  for (const step of path) {
    if (typeof step === 'number') out += `[${step}]`;
    else if (IDENTIFIER.test(step)) out += out === '' ? step : `.${step}`;
    else out += `[${JSON.stringify(step)}]`;
  }
  return printable(out);
}

/** Columns padded to their widest cell (the last one not), two spaces apart. */
function columns(rows: string[][]): string[] {
  const width = (text: string): number => stripVTControlCharacters(text).length;
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, width(cell))));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i] - width(cell)))).join('  ').trimEnd());
}

/**
 * `get --explain`: one line per leaf — its path, the layer that set it,
 * `@REV` and the author of that layer's last change of the key, and
 * `hidden by X, Y` when unsets hid something there. A layer the caller may
 * not read shows as "(no access)" and nothing more.
 */
export function formatExplain(leaves: readonly ExplainLeaf[], style: Paint): string {
  if (leaves.length === 0) return '(no leaves)';
  return columns(leaves.map((leaf) => {
    const path = style.key(leafPath(leaf.path));
    const hidden = leaf.hidden === undefined || leaf.hidden.length === 0 ? '' : style.dim(`hidden by ${printable(leaf.hidden.join(', '))}`);
    if (leaf.layer === NO_ACCESS) return [path, NO_ACCESS];
    // No layer sets it: only what unsets hid there.
    if (leaf.layer === '') return [path, hidden];
    return [
      path, printable(leaf.layer), leaf.rev === undefined ? '' : `@${leaf.rev}`, printable(leaf.author ?? ''), hidden,
    ];
  })).join('\n');
}

/** Names, or their count and the first of them when there are many. */
function someNames(names: readonly string[]): string {
  const shown = names.slice(0, NAMES_LISTED).map((n) => printable(n)).join(', ');
  return names.length > NAMES_LISTED ? `${names.length} keys: ${shown}, … and ${names.length - NAMES_LISTED} more` : shown;
}

const keysText = (n: number): string => `${n} key${n === 1 ? '' : 's'}`;

/**
 * `apply --dry-run`: the own entries the apply would add, change and
 * remove, then every environment whose merged view would change with its
 * count of keys, the environment itself first, then what the schemas in
 * force would say of it.
 */
export function formatPlan(plan: PlanResult, style: Paint): string {
  const lines = [style.bold(`${printable(plan.env)} at revision ${plan.rev}: what apply would change (dry run: nothing was written)`)];
  const kinds: [string, string[]][] = [['added', plan.added], ['changed', plan.changed], ['removed', plan.removed]];
  const some = kinds.filter(([, names]) => names.length > 0);
  if (some.length === 0) lines.push('  own entries: no change');
  for (const [kind, names] of some) lines.push(`  ${kind}: ${someNames(names)}`);
  lines.push('merged views that would change:');
  for (const view of plan.views) lines.push(`  ${style.key(printable(view.env))}: ${keysText(view.changed)}`);
  // What the schemas in force would say: a refusal, or the warnings it would be written with.
  if (plan.violations !== undefined && plan.violations.length > 0) {
    lines.push('schemas: the apply would be refused');
    lines.push(...violationLines('  refused', plan.violations, plan.violationsMore ?? 0).map((line) => printable(line)));
  }
  // Its warnings (warn-mode schemas) go to stderr as a write's do.
  return lines.join('\n');
}

/** `env layers ENV --show`: its parents, the merge order (lowest first) and the environments built on it. */
export function formatShow(show: EnvShowResult, style: Paint): string {
  const list = (names: readonly string[]): string => (names.length === 0 ? '(none)' : printable(names.join(', ')));
  return [
    style.bold(`${printable(show.env)} at revision ${show.rev}`),
    `parents: ${list(show.parents)}`,
    `order: ${printable(show.order.join(ARROW))}`,
    `dependents: ${list(show.dependents)}`,
  ].join('\n');
}

/** The line of an `env layers` write: the parent list it set. */
export function layersWritten(request: Extract<AdminRequest, { op: 'env.layers' }>, w: WriteResult): string {
  const parents = request.parents.length === 0 ? 'no parents now' : `parents ${printable(request.parents.join(', '))}`;
  return `${printable(w.env)}: ${parents} (revision ${w.rev})`;
}

/** After a rollback: each key whose merged value still differs from REV, with the layer that makes it differ. */
export function stillDiffers(rev: number, differs: WriteResult['differs']): string[] {
  return (differs ?? []).map(({ key, layer }) => `still differs from ${rev}: ${printable(key)} (from ${printable(layer)})`);
}

/** The parents of an environment after its name, for lists: ` (on base, prod)`, or nothing. */
export function onParents(parents: readonly string[] | undefined): string {
  return parents === undefined || parents.length === 0 ? '' : ` (on ${printable(parents.join(', '))})`;
}

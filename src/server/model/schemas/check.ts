import type { KeyChange, SchemaMode, SchemaViolation } from '../../../protocol/index.js';
import { errorsOf, type CompiledSchema } from './compile.js';
import { matcher, type Matcher } from './patterns.js';
import { schemaName, type SchemaId } from './records.js';

/** A schema in force: its current version, compiled. */
export interface ActiveSchema extends SchemaId {
  version: number;
  mode: SchemaMode;
  /** The JSON text (what a thread compiles again). */
  text: string;
  compiled: CompiledSchema;
  envMatch: Matcher;
  keyMatch: Matcher;
}

export function activeSchema(id: SchemaId, version: number, mode: SchemaMode, text: string, compiled: CompiledSchema): ActiveSchema {
  return { ...id, version, mode, text, compiled, envMatch: matcher(id.envPattern), keyMatch: matcher(id.keyPattern) };
}

/**
 * One check to make: a key's value against a schema, or (a whole schema) the environment's keys
 * that match its key pattern as one object. `value` and the entries' values are JSON text.
 */
export interface CheckItem {
  schema: ActiveSchema;
  env: string;
  key?: string;
  value?: string;
  entries?: [string, string][];
}

/** What a change of merged views asks to be checked: each changed key a schema covers, and each whole view it covers that changed. */
export function itemsOf(
  schemas: readonly ActiveSchema[], views: ReadonlyMap<string, readonly KeyChange[]>, viewAfter: (env: string) => ReadonlyMap<string, string>,
): CheckItem[] {
  const items: CheckItem[] = [];
  for (const [env, changes] of views) {
    const here = schemas.filter((s) => s.envMatch(env));
    if (here.length === 0 || changes.length === 0) continue;
    for (const schema of here) {
      if (schema.whole) {
        if (changes.some(([key]) => schema.keyMatch(key))) items.push(wholeItem(schema, env, viewAfter(env)));
        continue;
      }
      for (const [key, , after] of changes) if (after !== null && schema.keyMatch(key)) items.push({ schema, env, key, value: after });
    }
  }
  return items;
}

/** Everything `schema` covers in one environment's view: each key, or the whole view. */
export function coverageOf(schema: ActiveSchema, env: string, view: ReadonlyMap<string, string>): CheckItem[] {
  if (!schema.envMatch(env)) return [];
  if (schema.whole) {
    // As a write checks it: a view holding no key the schema covers is not checked until it holds one.
    const item = wholeItem(schema, env, view);
    return item.entries!.length === 0 ? [] : [item];
  }
  const items: CheckItem[] = [];
  for (const [key, value] of view) if (schema.keyMatch(key)) items.push({ schema, env, key, value });
  return items;
}

function wholeItem(schema: ActiveSchema, env: string, view: ReadonlyMap<string, string>): CheckItem {
  const entries: [string, string][] = [];
  for (const [key, value] of view) if (schema.keyMatch(key)) entries.push([key, value]);
  return { schema, env, entries };
}

/** Bytes an item hands the validator (what decides where it is checked). */
export function itemBytes(item: CheckItem): number {
  if (item.value !== undefined) return item.value.length;
  let n = 0;
  for (const [k, v] of item.entries ?? []) n += k.length + v.length;
  return n;
}

/** The value an item checks, parsed. */
export function itemValue(item: Pick<CheckItem, 'value' | 'entries'>): unknown {
  if (item.value !== undefined) return JSON.parse(item.value);
  const whole: Record<string, unknown> = {};
  for (const [key, value] of item.entries ?? []) whole[key] = JSON.parse(value);
  return whole;
}

/** What a check found, without the schema (it may cross a thread). */
export interface Found {
  key: string;
  path: string;
  keyword: string;
  message: string;
}

/** Checks one item's value with a compiled validate function. */
export function runCheck(validate: CompiledSchema['validate'], item: Pick<CheckItem, 'key' | 'value' | 'entries'>): Found[] {
  if (validate(itemValue(item))) return [];
  return errorsOf(validate.errors).map((e) => {
    if (item.key !== undefined) return { key: item.key, path: e.path, keyword: e.keyword, message: e.message };
    // A whole view: the pointer's first step is the key.
    if (e.path === '') return { key: e.missing ?? '', path: '', keyword: e.keyword, message: e.missing === undefined ? e.message : 'is required' };
    const slash = e.path.indexOf('/', 1);
    const step = slash < 0 ? e.path.slice(1) : e.path.slice(1, slash);
    return { key: step.replace(/~1/g, '/').replace(/~0/g, '~'), path: slash < 0 ? '' : e.path.slice(slash), keyword: e.keyword, message: e.message };
  });
}

export function violationOf(item: CheckItem, found: Found): SchemaViolation {
  return { env: item.env, key: found.key, path: found.path, keyword: found.keyword, message: found.message, schema: schemaName(item.schema), version: item.schema.version };
}

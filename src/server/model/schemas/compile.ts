import { createHash } from 'node:crypto';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsImport from 'ajv-formats';
import { jsonDepth } from '../json-depth.js';

/**
 * A schema's JSON text made into a check, with the bounds ajv needs: ajv turns a schema into code,
 * so a schema is trusted input (only admins set them) and is bounded before ajv sees it — its
 * bytes, its nesting and its count — and compiled with `$data` off, strict mode on and no loader
 * (a `$ref` to anything outside the schema is refused when it is set).
 */

/** Bytes of one schema's JSON text. */
export const MAX_SCHEMA_BYTES = 64 * 1024;
/** Nesting of arrays and objects in one schema. */
export const MAX_SCHEMA_DEPTH = 32;

// ajv-formats is CommonJS with its function as the default export.
const addFormats = ((addFormatsImport as unknown as { default?: typeof addFormatsImport }).default ?? addFormatsImport) as unknown as (ajv: Ajv2020) => Ajv2020;

/**
 * Formats whose check is a bounded scan (no regular expression that can backtrack): a schema that
 * uses any other format is checked where it can be stopped (`guarded`).
 */
const BOUNDED_FORMATS = new Set(['date', 'time', 'date-time', 'iso-time', 'iso-date-time', 'uuid', 'ipv4', 'int32', 'int64', 'float', 'double', 'byte']);

/** A compiled schema. */
export interface CompiledSchema {
  validate: ValidateFunction;
  /**
   * Whether checking a value can take more than a bounded multiple of its size times the schema's:
   * a `pattern` (a regular expression may backtrack), `uniqueItems` (pairs of items), a `$ref` or
   * `$dynamicRef` (recursion through `anyOf` can branch at every level), a format outside
   * BOUNDED_FORMATS. Such checks run on a thread under a time limit, never on the event loop.
   */
  guarded: boolean;
  /** sha-256 of the JSON text (hex): the key of the compiled cache. */
  digest: string;
}

/** Why a schema's JSON text is refused before ajv compiles it, or undefined. */
export function schemaFault(text: string): string | undefined {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SCHEMA_BYTES) return `the schema is ${bytes} bytes; a schema may take at most ${MAX_SCHEMA_BYTES}`;
  const deepest = jsonDepth(text);
  if (deepest > MAX_SCHEMA_DEPTH) return `the schema is nested ${deepest} levels deep; at most ${MAX_SCHEMA_DEPTH}`;
  return undefined;
}

/** Whether checking against `schema` must run where it can be stopped (CompiledSchema.guarded). */
export function isGuarded(schema: unknown): boolean {
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      for (const element of node as unknown[]) stack.push(element);
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'pattern' || key === 'patternProperties' || key === '$ref' || key === '$dynamicRef' || key === '$recursiveRef') return true;
      if (key === 'uniqueItems' && value === true) return true;
      if (key === 'format' && (typeof value !== 'string' || !BOUNDED_FORMATS.has(value))) return true;
      stack.push(value);
    }
  }
  return false;
}

/**
 * Compiles a schema's JSON text (bounded by schemaFault first); throws Error with ajv's reason when
 * ajv refuses it. Each schema gets an ajv of its own, so that one schema's `$id` never meets another's.
 */
export function compileSchema(text: string): CompiledSchema {
  const fault = schemaFault(text);
  if (fault !== undefined) throw new Error(fault);
  const schema = JSON.parse(text) as unknown;
  if (typeof schema !== 'boolean' && (schema === null || typeof schema !== 'object' || Array.isArray(schema))) {
    throw new Error('a schema is a JSON object (or true or false)');
  }
  const ajv = new Ajv2020({ strict: true, allErrors: true, $data: false, validateFormats: true, code: { optimize: true } });
  addFormats(ajv);
  const validate = ajv.compile(schema as object);
  return { validate, guarded: isGuarded(schema), digest: createHash('sha256').update(text).digest('hex') };
}

/** The first lines of ajv's errors as one violation each: keyword, JSON pointer and message. */
export function errorsOf(errors: readonly ErrorObject[] | null | undefined): { path: string; keyword: string; message: string; missing?: string }[] {
  return (errors ?? []).map((e) => ({
    path: e.instancePath,
    keyword: e.keyword,
    message: withName(e),
    ...(e.keyword === 'required' && typeof (e.params as { missingProperty?: unknown }).missingProperty === 'string'
      ? { missing: (e.params as { missingProperty: string }).missingProperty } : {}),
  }));
}

/** ajv's message, with the property it is about when ajv keeps that apart (additional, unevaluated, a property name). */
function withName(e: ErrorObject): string {
  const params = e.params as { additionalProperty?: unknown; unevaluatedProperty?: unknown; propertyName?: unknown };
  const name = params.additionalProperty ?? params.unevaluatedProperty ?? params.propertyName;
  return `${e.message ?? e.keyword}${typeof name === 'string' ? ` (${JSON.stringify(name.slice(0, 64))})` : ''}`;
}

/**
 * Compiled schemas by the digest of their text, at most `max` (the least recently used go first):
 * each version is compiled once, however many writes it checks.
 */
export class CompiledCache {
  private readonly byDigest = new Map<string, CompiledSchema>();
  constructor(private readonly max = 1024) {}

  get(text: string): CompiledSchema {
    const digest = createHash('sha256').update(text).digest('hex');
    const hit = this.byDigest.get(digest);
    if (hit !== undefined) {
      this.byDigest.delete(digest);
      this.byDigest.set(digest, hit);
      return hit;
    }
    const compiled = compileSchema(text);
    this.byDigest.set(digest, compiled);
    if (this.byDigest.size > this.max) this.byDigest.delete(this.byDigest.keys().next().value!);
    return compiled;
  }
}

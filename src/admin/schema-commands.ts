import { LocalErrorCode, VitefaError, type AdminRequest, type SchemaMode } from '../protocol/index.js';
import { readSchemaFile } from './apply-files.js';

/*
 * The commands of schemas (docs/schemas.md): `schema set|get|del|list|history|rollback`,
 * part of commands.ts's COMMANDS. A schema is named by its two patterns and --whole,
 * never by an environment: `use ENV` in the REPL leaves them as typed.
 */

/** What these commands read of commands.ts's Flags. */
interface SchemaFlags {
  whole: boolean;
  mode?: SchemaMode;
  version?: number;
}

/** A command as commands.ts's Spec describes one. */
interface SchemaSpec {
  usage: string;
  summary: string;
  details: string;
  envFirst: false;
  prepare(args: string[], flags: SchemaFlags): AdminRequest;
}

const usage = (message: string): VitefaError => new VitefaError(LocalErrorCode.USAGE, message);

function arity(name: string, args: string[], min: number, max: number): void {
  if (args.length < min || args.length > max) throw usage(`usage: ${SCHEMA_COMMANDS[name].usage}`);
}

/** A schema's version: 1, 2, … */
export function schemaVersion(text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) throw usage(`not a schema version number (1, 2, …): ${text}`);
  return Number(text);
}

/** `schema set --mode`. */
export function schemaMode(text: string): SchemaMode {
  if (text !== 'enforce' && text !== 'warn') throw usage(`--mode takes enforce or warn, got ${JSON.stringify(text)}`);
  return text;
}

/** The commands that name one schema (and take --whole). */
export const SCHEMA_NAMED: readonly string[] = ['schema set', 'schema get', 'schema del', 'schema history', 'schema rollback'];

/** A schema's patterns (and --whole) as a request names them. */
function schemaId(a: string[], f: SchemaFlags): { envPattern: string; keyPattern: string; whole?: boolean } {
  return { envPattern: a[0], keyPattern: a[1], ...(f.whole ? { whole: true } : {}) };
}

const PATTERNS_HELP = 'ENV_PATTERN and KEY_PATTERN are globs in which * stands for any run of characters, / included (prod/*, db.*, *); --whole names the schema of whole environments.';

export const SCHEMA_COMMANDS: Record<string, SchemaSpec> = {
  'schema set': {
    usage: 'schema set ENV_PATTERN KEY_PATTERN FILE [--mode enforce|warn] [--whole]', summary: 'check the writes of matching keys against the JSON Schema in FILE (admin)', envFirst: false,
    details: `FILE holds a JSON Schema (draft 2020-12). ${PATTERNS_HELP} A write that changes a matching key in a matching environment is checked against it, in the merged view of every environment it changes: in --mode enforce (the default) one that fails is refused, nothing written, with a refused: line per violation (exit 1); in --mode warn it is written, with a warning: line per violation, and status counts the keys that fail. --whole checks an environment's matching keys as one object of key -> value (required keys, for instance). An enforced schema is refused while something it covers fails it. Each set makes a new version (schema history, schema rollback).`,
    prepare: (a, f) => {
      arity('schema set', a, 3, 3);
      const schema = readSchemaFile(a[2]);
      return { op: 'schema.set', ...schemaId(a, f), schema, ...(f.mode === undefined ? {} : { mode: f.mode }) };
    },
  },
  'schema get': {
    usage: 'schema get ENV_PATTERN KEY_PATTERN [--whole] [--version N]', summary: 'print a schema (the current version, or version N)', envFirst: false,
    details: 'A header line (version, mode, author, time), then the schema as JSON, indented. --json prints the answer, the schema in it as its JSON text.',
    prepare: (a, f) => (arity('schema get', a, 2, 2), { op: 'schema.get', ...schemaId(a, f), ...(f.version === undefined ? {} : { version: f.version }) }),
  },
  'schema del': {
    usage: 'schema del ENV_PATTERN KEY_PATTERN [--whole]', summary: 'stop checking writes against a schema (admin)', envFirst: false,
    details: 'Its history stays: schema rollback makes one of its versions current again.',
    prepare: (a, f) => (arity('schema del', a, 2, 2), { op: 'schema.del', ...schemaId(a, f) }),
  },
  'schema list': {
    usage: 'schema list [ENV]', summary: 'schemas (or those that apply to ENV), with mode, version and what fails them', envFirst: false,
    details: 'FAILING: for a schema in warn mode, the keys (environments, for a whole schema) that fail it now.',
    prepare: (a) => (arity('schema list', a, 0, 1), a[0] === undefined ? { op: 'schema.list' } : { op: 'schema.list', env: a[0] }),
  },
  'schema history': {
    usage: 'schema history ENV_PATTERN KEY_PATTERN [--whole]', summary: 'versions of a schema, newest first', envFirst: false,
    details: 'One line per version: its number, the revision that made it, time, mode (or deleted), author, size.',
    prepare: (a, f) => (arity('schema history', a, 2, 2), { op: 'schema.history', ...schemaId(a, f) }),
  },
  'schema rollback': {
    usage: 'schema rollback ENV_PATTERN KEY_PATTERN VERSION [--whole]', summary: 'make a version of a schema current again, as a new version (admin)', envFirst: false,
    details: 'VERSION\'s schema and mode, checked as schema set checks them: an enforced schema is refused while something it covers fails it.',
    prepare: (a, f) => (arity('schema rollback', a, 3, 3), { op: 'schema.rollback', ...schemaId(a, f), version: schemaVersion(a[2]) }),
  },
};

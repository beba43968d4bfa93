import fs from 'node:fs';
import {
  LocalErrorCode, VitefaError,
  type AdminRequest, type AdminResult, type Entry, type KeyChange, type ResultOf,
} from '../protocol/index.js';


interface Spec {
  usage: string;
  summary: string;
  parse(args: string[], flags: Flags): AdminRequest;
}

export interface Flags {
  replace: boolean;
  limit?: number;
}

const usage = (message: string): VitefaError => new VitefaError(LocalErrorCode.USAGE, message);

function arity(name: string, args: string[], min: number, max: number): void {
  if (args.length < min || args.length > max) throw usage(`usage: ${COMMANDS[name]!.usage}`);
}

function revision(text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw usage(`not a revision number: ${text}`);
  return Number(text);
}

/** VALUE as typed: JSON if it parses, else the text itself as a JSON string. */
export function valueText(text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    return JSON.stringify(text);
  }
}

function strictJson(text: string, what: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch (err) {
    throw usage(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads an apply file: a JSON object of key -> value. */
export function readApplyFile(file: string): Entry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `${file} must hold a JSON object of key -> value`);
  }
  return Object.entries(parsed).map(([k, v]) => [k, JSON.stringify(v)]);
}

export const COMMANDS: Record<string, Spec> = {
  'env add': { usage: 'env add ENV', summary: 'create an environment', parse: (a) => (arity('env add', a, 1, 1), { op: 'env.add', env: a[0]! }) },
  'env del': { usage: 'env del ENV', summary: 'delete an environment and its keys', parse: (a) => (arity('env del', a, 1, 1), { op: 'env.del', env: a[0]! }) },
  'env list': { usage: 'env list', summary: 'list environments with revision and key count', parse: (a) => (arity('env list', a, 0, 0), { op: 'env.list' }) },
  set: {
    usage: 'set ENV KEY VALUE', summary: 'set a key (VALUE is JSON, or else taken as a string)',
    parse: (a) => (arity('set', a, 3, 3), { op: 'set', env: a[0]!, key: a[1]!, value: valueText(a[2]!) }),
  },
  get: { usage: 'get ENV KEY', summary: 'print the value of a key', parse: (a) => (arity('get', a, 2, 2), { op: 'get', env: a[0]!, key: a[1]! }) },
  del: { usage: 'del ENV KEY', summary: 'delete a key', parse: (a) => (arity('del', a, 2, 2), { op: 'del', env: a[0]!, key: a[1]! }) },
  list: {
    usage: 'list ENV [PREFIX]', summary: 'list keys and values',
    parse: (a) => (arity('list', a, 1, 2), a[1] === undefined ? { op: 'list', env: a[0]! } : { op: 'list', env: a[0]!, prefix: a[1] }),
  },
  merge: {
    usage: 'merge ENV KEY JSON', summary: 'deep-merge JSON into a key (arrays merge as sets; {"replace":[…]} replaces)',
    parse: (a) => (arity('merge', a, 3, 3), { op: 'merge', env: a[0]!, key: a[1]!, value: strictJson(a[2]!, 'merge value') }),
  },
  clear: {
    usage: 'clear ENV KEY [PATH…]', summary: 'remove a path, or values from an array, inside a key (no PATH: the key)',
    parse: (a) => (arity('clear', a, 2, 1026), { op: 'clear', env: a[0]!, key: a[1]!, path: a.slice(2) }),
  },
  apply: {
    usage: 'apply ENV FILE [--replace]', summary: 'set many keys from a JSON file in one release (--replace removes the others)',
    parse: (a, f) => (arity('apply', a, 2, 2), { op: 'apply', env: a[0]!, entries: readApplyFile(a[1]!), replace: f.replace }),
  },
  history: {
    usage: 'history ENV [KEY] [--limit N]', summary: 'releases of an environment (or of one key), newest first',
    parse: (a, f) => {
      arity('history', a, 1, 2);
      const req: AdminRequest = { op: 'history', env: a[0]! };
      if (a[1] !== undefined) req.key = a[1];
      if (f.limit !== undefined) req.limit = f.limit;
      return req;
    },
  },
  diff: {
    usage: 'diff ENV REV [REV]', summary: 'what changed between two revisions (default: REV to now)',
    parse: (a) => {
      arity('diff', a, 2, 3);
      const req: AdminRequest = { op: 'diff', env: a[0]!, from: revision(a[1]!) };
      if (a[2] !== undefined) req.to = revision(a[2]);
      return req;
    },
  },
  rollback: {
    usage: 'rollback ENV REV', summary: 'restore the state at REV, as a new release',
    parse: (a) => (arity('rollback', a, 2, 2), { op: 'rollback', env: a[0]!, rev: revision(a[1]!) }),
  },
  status: {
    usage: 'status [ENV]', summary: 'servers, environments, agents and the revision each applied',
    parse: (a) => (arity('status', a, 0, 1), a[0] === undefined ? { op: 'status' } : { op: 'status', env: a[0] }),
  },
};

/** Names a user can type first (for help and completion). */
export const COMMAND_NAMES = Object.keys(COMMANDS);

/** Parses command words (flags --json, --replace, --limit N may appear anywhere). */
export function parseCommand(words: string[]): { request: AdminRequest; json: boolean } {
  const args: string[] = [];
  const flags: Flags = { replace: false };
  let json = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--json') json = true;
    else if (w === '--replace') flags.replace = true;
    else if (w === '--limit') {
      const n = words[++i];
      if (n === undefined || !/^\d+$/.test(n) || Number(n) < 1) throw usage('--limit takes a positive number');
      flags.limit = Number(n);
    } else if (w.startsWith('--') && w.length > 2 && !/^--?\d/.test(w)) throw usage(`unknown option ${w}`);
    else args.push(w);
  }
  if (args.length === 0) throw usage('no command given (try: help)');
  const two = `${args[0]} ${args[1] ?? ''}`.trim();
  const name = COMMANDS[two] !== undefined ? two : args[0]!;
  const spec = COMMANDS[name];
  if (spec === undefined) {
    throw usage(args[0] === 'env' ? 'usage: env add|del|list …' : `unknown command ${JSON.stringify(args[0])} (try: help)`);
  }
  return { request: spec.parse(args.slice(name.split(' ').length), flags), json };
}

export function helpText(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return ['Commands (add --json to any for machine-readable output):', ...lines, `  ${'help'.padEnd(width)}  this list`, `  ${'quit'.padEnd(width)}  leave the REPL`].join('\n');
}

/** A value for people: strings bare, everything else as JSON. */
export function showValue(json: string): string {
  const value: unknown = JSON.parse(json);
  return typeof value === 'string' ? value : json;
}

function showChange([key, before, after]: KeyChange): string {
  if (before === null) return `  + ${key} = ${after}`;
  if (after === null) return `  - ${key} (was ${before})`;
  return `  ~ ${key}: ${before} -> ${after}`;
}

export function formatResult(request: AdminRequest, result: AdminResult, json: boolean): string {
  if (json) return JSON.stringify(result);
  const r = result as ResultOf[keyof ResultOf];
  switch (request.op) {
    case 'env.add':
    case 'env.del':
    case 'set':
    case 'del':
    case 'merge':
    case 'clear':
    case 'apply':
    case 'rollback': {
      const w = r as ResultOf['set'];
      if (request.op === 'env.add') return `created ${w.env} at revision ${w.rev}`;
      if (request.op === 'env.del') return `deleted ${w.env} (${w.changed} keys) at revision ${w.rev}`;
      return w.changed === 0
        ? `${w.env}: nothing changed (revision ${w.rev})`
        : `${w.env}: revision ${w.rev} (${w.changed} key${w.changed === 1 ? '' : 's'} changed)`;
    }
    case 'get':
      return showValue((r as ResultOf['get']).value);
    case 'list':
      return (r as ResultOf['list']).entries.map(([k, v]) => `${k} = ${v}`).join('\n');
    case 'env.list': {
      const envs = (r as ResultOf['env.list']).envs;
      if (envs.length === 0) return '(no environments)';
      return ['ENV\tREVISION\tKEYS', ...envs.map((e) => `${e.env}\t${e.rev}\t${e.keys}`)].join('\n');
    }
    case 'history': {
      const h = r as ResultOf['history'];
      if (h.releases.length === 0) return '(no history)';
      return h.releases
        .map((rel) => [`rev ${rel.rev}  ${new Date(rel.time).toISOString()}  ${rel.op}  by ${rel.author}`, ...rel.changes.map(showChange)].join('\n'))
        .join('\n');
    }
    case 'diff': {
      const d = r as ResultOf['diff'];
      return [`${d.env}: ${d.from} -> ${d.to}`, ...(d.changes.length === 0 ? ['  (no differences)'] : d.changes.map(showChange))].join('\n');
    }
    case 'status': {
      const s = r as ResultOf['status'];
      const lines = [
        `server ${s.server.id} ${s.server.version} on ${s.server.listen}, store ${s.server.store}, workers ${s.server.workers}, up ${Math.round(s.server.uptimeMs / 1000)} s`,
        `environments: ${s.envs.map((e) => `${e.env}@${e.rev} (${e.keys} keys)`).join(', ') || '(none)'}`,
        `agents: ${s.agentsTotal}`,
      ];
      const counted = Object.entries(s.server.counters).filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : 1));
      lines.splice(1, 0, `sessions ended or refused: ${counted.filter(([k]) => k !== 'workerRestarts').map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}${s.server.counters.workerRestarts ? `; workers restarted: ${s.server.counters.workerRestarts}` : ''}`);
      const current = new Map(s.envs.map((e) => [e.env, e.rev]));
      for (const a of s.agents) {
        const envs = a.envs.map((e) => `${e.env}@${e.rev}${current.get(e.env) === e.rev ? '' : ' (behind)'}`).join(', ');
        lines.push(`  ${a.id} ${a.addr} ${envs}`);
      }
      if (s.agents.length < s.agentsTotal) lines.push(`  … and ${s.agentsTotal - s.agents.length} more`);
      return lines.join('\n');
    }
    default: {
      const unknown: never = request;
      return JSON.stringify(unknown);
    }
  }
}

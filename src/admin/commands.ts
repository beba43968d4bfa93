import { jsonFaultText } from '../json-syntax.js';
import { LocalErrorCode, VitefaError, type AdminRequest, type SchemaMode } from '../protocol/index.js';
import { promised } from '../promised.js';
import { makeVerifier } from '../security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../security/token.js';
import { readApply } from './apply-files.js';
import { SCHEMA_COMMANDS, SCHEMA_NAMED, schemaMode, schemaVersion } from './schema-commands.js';

export { readApplyFile } from './apply-files.js';

/** What a command may need from where it runs (a terminal, a script). */
export interface CommandIO {
  /** A new password for `account`, asked twice without echo, or from VITEFA_NEW_PASSWORD. */
  newPassword(account: string): Promise<string>;
  /** Iterations for new password verifiers (the server says how many it wants). */
  passwordIterations: number;
  /** The logged-in account (for `passwd`). */
  account: string;
}

/** A command ready to send: the request, how to print its result, and what to say after it. */
export interface Prepared {
  request: AdminRequest;
  json: boolean;
  /** `get --raw`: the value exactly as stored, control characters and all (for pipes). */
  raw?: boolean;
  /** Printed after the result (the new token of `token add`, shown only then). */
  note?: string;
  /** `watch ENV KEY`: only releases that change this key are shown. */
  watchKey?: string;
}

export interface Flags {
  replace: boolean;
  limit?: number;
  env?: string;
  user?: string;
  since?: number;
  agent?: string;
  values: boolean;
  before?: number;
  after?: string;
  /** `user add --read`: read-only grants (the flag repeats, or takes several separated by commas). */
  reads?: string[];
  /** `get`, `list`, `history --own`: the environment's own entries, not its merged view. */
  own: boolean;
  /** `get --explain`: where each leaf of the merged value comes from. */
  explain: boolean;
  /** `env layers ENV --none` (no parents) and `--show` (its layers). */
  none: boolean;
  show: boolean;
  /** `apply --dry-run`: what it would change, written nowhere. */
  dryRun: boolean;
  /** `set`, `merge`, `apply`, `rollback`, `env layers --allow-growth`: a value may grow past the server's growth limit. */
  allowGrowth: boolean;
  /** `schema … --whole`: the schema of whole environments (their matching keys as one object). */
  whole: boolean;
  /** `schema set --mode`: enforce (refuse what fails it) or warn. */
  mode?: SchemaMode;
  /** `schema get --version N`: that version, not the current one. */
  version?: number;
}

/** The flags that go with some commands only, the commands each goes with, and what it sets (those without a value). */
const FLAG_COMMANDS: Readonly<Record<string, { flag?: 'own' | 'explain' | 'none' | 'show' | 'dryRun' | 'allowGrowth' | 'whole'; commands: readonly string[] }>> = {
  '--own': { flag: 'own', commands: ['get', 'list', 'history'] },
  '--explain': { flag: 'explain', commands: ['get'] },
  '--none': { flag: 'none', commands: ['env layers'] },
  '--show': { flag: 'show', commands: ['env layers'] },
  '--dry-run': { flag: 'dryRun', commands: ['apply'] },
  '--allow-growth': { flag: 'allowGrowth', commands: ['set', 'merge', 'apply', 'rollback', 'env layers'] },
  '--whole': { flag: 'whole', commands: SCHEMA_NAMED },
  '--mode': { commands: ['schema set'] },
  '--version': { commands: ['schema get'] },
};

interface Spec {
  usage: string;
  summary: string;
  /** More, for `help COMMAND`. */
  details?: string;
  /** Its first argument is an environment (left out after `use ENV` in the REPL). */
  envFirst: boolean;
  prepare(args: string[], flags: Flags, io: CommandIO): AdminRequest | Promise<AdminRequest> | Promise<Omit<Prepared, 'json'>>;
}

const usage = (message: string): VitefaError => new VitefaError(LocalErrorCode.USAGE, message);

function arity(name: string, args: string[], min: number, max: number): void {
  if (args.length < min || args.length > max) throw usage(`usage: ${COMMANDS[name].usage}`);
}

function revision(text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw usage(`not a revision number: ${text}`);
  return Number(text);
}

/** `--allow-growth` as a write's request says it. */
const growth = (f: Flags): { allowGrowth?: true } => (f.allowGrowth ? { allowGrowth: true } : {});

const ALLOW_GROWTH = 'A write that makes a value more than the server\'s growthFactor (10) times larger than it was, and larger than 64 KiB, is refused unless it says --allow-growth.';

/**
 * Text that opens as JSON does (`{`, `[` or `"`, after any spaces) and does
 * not parse is a typo far more often than text meant as a string, and a
 * value goes to every host: it is refused, with the way to store it as a
 * string, never read as one.
 */
const LOOKS_LIKE_JSON = /^\s*[{["]/;
const AS_A_STRING = 'to store such text as a string, give it as a JSON string, e.g. \'"{\\"a\\":1"\'';

/** VALUE as typed: JSON if it parses, else (when it does not open as JSON does) the text itself as a JSON string. */
export function valueText(text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    if (LOOKS_LIKE_JSON.test(text)) throw notJson(text, 'value');
    return JSON.stringify(text);
  }
}

function strictJson(text: string, what: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    throw notJson(text, what);
  }
}

/** By position: the parser's own message quotes the text, which may be a secret. */
function notJson(text: string, what: string): VitefaError {
  return usage(`${what} is not valid JSON ${jsonFaultText(text)}${LOOKS_LIKE_JSON.test(text) ? `; ${AS_A_STRING}` : ''}`);
}

/** A time for `audit --since`: ISO 8601, or an age such as 30m, 12h, 7d. */
export function parseSince(text: string, now = Date.now()): number {
  const age = /^(\d+)(s|m|h|d)$/.exec(text);
  if (age !== null) return now - Number(age[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  if (Number.isNaN(t) || !/^\d{4}-\d\d-\d\d/.test(text)) throw usage(`--since takes a time (2026-12-01T08:00:00Z) or an age (30m, 12h, 7d), got ${text}`);
  return t;
}

const ROLES_HELP = 'viewer (read the environments granted), editor (also change them), admin (everything)';
/** The roles an account may have (the server checks them too; here so that no password is asked for an account it would refuse). */
const ROLES: readonly string[] = ['viewer', 'editor', 'admin'];

export const COMMANDS: Record<string, Spec> = {
  'env add': { usage: 'env add ENV', summary: 'create an environment (admin)', envFirst: false, prepare: (a) => (arity('env add', a, 1, 1), { op: 'env.add', env: a[0] }) },
  'env del': { usage: 'env del ENV', summary: 'delete an environment and its keys (admin)', envFirst: false, prepare: (a) => (arity('env del', a, 1, 1), { op: 'env.del', env: a[0] }) },
  'env list': { usage: 'env list', summary: 'environments with revision, key count and parents', envFirst: false, prepare: (a) => (arity('env list', a, 0, 0), { op: 'env.list' }) },
  'env layers': {
    usage: 'env layers ENV PARENT… | ENV --none | ENV --show', summary: 'build an environment on others it reads (an editor of it), or show its layers', envFirst: false,
    details: `ENV's view is its PARENTs merged lowest first (each with its own parents), then its own entries, key by key as merge does (docs/layers.md). --none stands it alone again; --show prints its parents, the merge order (lowest first) and the environments built on it. At most 16 parents, no cycle. ${ALLOW_GROWTH}`,
    prepare: (a, f) => {
      if (f.show && f.none) throw usage('--show and --none do not go together');
      if (f.show && f.allowGrowth) throw usage('--show and --allow-growth do not go together (--show writes nothing)');
      const flag = f.show ? '--show' : f.none ? '--none' : undefined;
      if (flag !== undefined && a.length > 1) throw usage(`env layers ENV ${flag} takes no PARENT (usage: ${COMMANDS['env layers'].usage})`);
      if (f.show) return (arity('env layers', a, 1, 1), { op: 'env.show', env: a[0] });
      if (f.none) return (arity('env layers', a, 1, 1), { op: 'env.layers', env: a[0], parents: [], ...growth(f) });
      arity('env layers', a, 2, 1025);
      return { op: 'env.layers', env: a[0], parents: a.slice(1), ...growth(f) };
    },
  },
  set: {
    usage: 'set ENV KEY VALUE', summary: 'set a key (VALUE is JSON; plain text is taken as a string)', envFirst: true,
    details: `VALUE is JSON; text that does not parse is taken as a string, unless it starts with {, [ or " (a typo, refused: give such text as a JSON string, '"{\\"a\\":1"'). VALUE spreads over several lines in the REPL while a {, [ or " is open. ${ALLOW_GROWTH}`,
    prepare: (a, f) => (arity('set', a, 3, 3), { op: 'set', env: a[0], key: a[1], value: valueText(a[2]), ...growth(f) }),
  },
  get: {
    usage: 'get ENV KEY [--raw] [--own | --explain]', summary: 'print the value of a key', envFirst: true,
    details: 'A string prints bare, anything else as JSON; control characters (ESC and the like) show escaped, as \\u001b. --raw prints the value exactly as stored, for pipes. Of a layered environment, the merged value; --own its own entry ({"unset": […], "value": …} when it hides what its layers give); --explain one line per leaf of the merged value: its path, the layer that set it, that layer\'s last change of the key (@REV, author) and the layers whose unset hid something there.',
    prepare: (a, f) => {
      arity('get', a, 2, 2);
      if (f.own && f.explain) throw usage('--own and --explain do not go together');
      return { op: 'get', env: a[0], key: a[1], ...(f.own ? { own: true } : {}), ...(f.explain ? { explain: true } : {}) };
    },
  },
  del: {
    usage: 'del ENV KEY', summary: 'delete a key (its own entry: what its layers give shows again)', envFirst: true,
    prepare: (a) => (arity('del', a, 2, 2), { op: 'del', env: a[0], key: a[1] }),
  },
  list: {
    usage: 'list ENV [PREFIX] [--after KEY] [--own]', summary: 'keys and values (--own: its own entries, not the merged view)', envFirst: true,
    details: 'One page of at most the server\'s answerBytes (4 MiB by default); a page that ends early says which --after KEY continues it.',
    prepare: (a, f) => {
      arity('list', a, 1, 2);
      const req: AdminRequest = { op: 'list', env: a[0] };
      if (a[1] !== undefined) req.prefix = a[1];
      if (f.after !== undefined) req.after = f.after;
      if (f.own) req.own = true;
      return req;
    },
  },
  merge: {
    usage: 'merge ENV KEY JSON', summary: 'deep-merge JSON into a key', envFirst: true,
    details: `Objects merge key by key, a scalar replaces, arrays merge as sets; {"replace": [...]} replaces an array (docs/merge-and-clear.md). ${ALLOW_GROWTH}`,
    prepare: (a, f) => (arity('merge', a, 3, 3), { op: 'merge', env: a[0], key: a[1], value: strictJson(a[2], 'merge value'), ...growth(f) }),
  },
  clear: {
    usage: 'clear ENV KEY [PATH…]', summary: 'remove a path, or values from an array, inside a key', envFirst: true,
    details: 'Without PATH the key itself is deleted. Of a layered environment it clears its own entry only; unset hides what its layers give.',
    prepare: (a) => (arity('clear', a, 2, 1026), { op: 'clear', env: a[0], key: a[1], path: a.slice(2) }),
  },
  unset: {
    usage: 'unset ENV KEY [PATH…]', summary: 'hide, in a layered environment, what its layers give at a key (or a path inside it)', envFirst: true,
    details: 'PATH as clear reads it; without PATH the whole key is hidden. The hiding is an own entry of ENV, kept until del ENV KEY removes it (del removes an own value and shows the layers\' again; unset hides theirs).',
    prepare: (a) => (arity('unset', a, 2, 1026), { op: 'unset', env: a[0], key: a[1], path: a.slice(2) }),
  },
  apply: {
    usage: 'apply ENV FILE|DIR [--replace] [--dry-run]', summary: 'set many keys from a JSON file, or a folder of KEY.json files, in one release', envFirst: true,
    details: `FILE holds a JSON object of key -> value; DIR one file per key, KEY.json holding its JSON value (nothing else: other files and subfolders are refused). At most 256 MiB and 1,000,000 files are read. --replace also deletes the keys it does not name. --dry-run writes nothing: it prints the own entries it would add, change and remove, and every environment whose merged view would change (this one first, then those built on it) with its number of keys. ${ALLOW_GROWTH}`,
    prepare: (a, f) => {
      arity('apply', a, 2, 2);
      const entries = readApply(a[1]);
      return f.dryRun ? { op: 'plan', env: a[0], entries, replace: f.replace } : { op: 'apply', env: a[0], entries, replace: f.replace, ...growth(f) };
    },
  },
  history: {
    usage: 'history ENV [KEY] [--limit N] [--before REV] [--values] [--own]', summary: 'releases of an environment (or of one key), newest first', envFirst: true,
    details: 'One page: at most N releases (50) and the server\'s answerBytes (4 MiB); a page that ends early says which --before REV continues it. Values over historyValueBytes (4 KiB) show as their size and SHA-256; --values asks for them whole, as far as the page\'s bytes go. A release made by a write to a layer shows as "via LAYER@REV" with that write\'s changes; --own leaves those out (only the environment\'s own writes). A release that changed the parent list shows the new list.',
    prepare: (a, f) => {
      arity('history', a, 1, 2);
      const req: AdminRequest = { op: 'history', env: a[0] };
      if (a[1] !== undefined) req.key = a[1];
      if (f.limit !== undefined) req.limit = f.limit;
      if (f.before !== undefined) req.before = f.before;
      if (f.values) req.values = true;
      if (f.own) req.own = true;
      return req;
    },
  },
  diff: {
    usage: 'diff ENV REV [REV] [--after KEY] [--values]', summary: 'what changed between two revisions (default: REV to now)', envFirst: true,
    details: 'One page by key of at most the server\'s answerBytes (4 MiB); a page that ends early says which --after KEY continues it. Large values as in history (--values).',
    prepare: (a, f) => {
      arity('diff', a, 2, 3);
      const req: AdminRequest = { op: 'diff', env: a[0], from: revision(a[1]) };
      if (a[2] !== undefined) req.to = revision(a[2]);
      if (f.after !== undefined) req.after = f.after;
      if (f.values) req.values = true;
      return req;
    },
  },
  rollback: {
    usage: 'rollback ENV REV', summary: 'restore the state at REV, as a new release', envFirst: true,
    details: `Of a layered environment, its own entries and its parent list as they were at REV; a key whose merged value still differs (a layer changed since) is named with that layer. ${ALLOW_GROWTH}`,
    prepare: (a, f) => (arity('rollback', a, 2, 2), { op: 'rollback', env: a[0], rev: revision(a[1]), ...growth(f) }),
  },
  ...SCHEMA_COMMANDS,
  watch: {
    usage: 'watch ENV [KEY]', summary: 'follow releases as they land (Ctrl-C stops)', envFirst: true,
    prepare: (a) => promised<Omit<Prepared, 'json'>>(() => (arity('watch', a, 1, 2), { request: { op: 'watch', env: a[0] }, ...(a[1] === undefined ? {} : { watchKey: a[1] }) })),
  },
  status: {
    usage: 'status [ENV] [--agent ID]', summary: 'the servers, environments, and what every agent acknowledged', envFirst: false,
    details: 'Agents acknowledge a release 1-3 s after it lands: ACKED AT REV counts those whose last acknowledgement is of the current revision, ACKED EARLIER the others, RELEASED how long ago the current revision was applied. ACKS BY REV counts agents by revision and chain value; "(fork)" marks agents of another history at the current revision. --agent ID finds that agent on whichever server holds it.',
    prepare: (a, f) => {
      arity('status', a, 0, 1);
      const req: AdminRequest = { op: 'status' };
      if (a[0] !== undefined) req.env = a[0];
      if (f.agent !== undefined) req.agent = f.agent;
      return req;
    },
  },
  'user add': {
    usage: 'user add NAME ROLE [ENV…] [--read ENV,…]', summary: 'create an account (admin)', envFirst: false,
    details: `ROLE: ${ROLES_HELP}. ENV: the environments granted (names, prefixes such as prod/*, or *): an editor changes and reads them, a viewer reads them. --read ENV,…: environments it reads besides (an editor that changes shop and reads prod: user add ed editor shop --read prod). An account reads nothing else: a viewer of everything is user add NAME viewer '*'. The password is asked twice without echo, or taken from VITEFA_NEW_PASSWORD; only a salted derivation of it reaches the server.`,
    prepare: async (a, f, io) => {
      arity('user add', a, 2, 258);
      if (!ROLES.includes(a[1])) throw usage(`invalid role ${JSON.stringify(a[1])}: one of ${ROLES.join(', ')}`);
      const password = await io.newPassword(a[0]);
      return {
        op: 'user.add', name: a[0], role: a[1], envs: a.slice(2), ...(f.reads === undefined ? {} : { reads: f.reads }), verifier: makeVerifier(password, io.passwordIterations),
      };
    },
  },
  'user del': { usage: 'user del NAME', summary: 'delete an account (admin); its sessions end', envFirst: false, prepare: (a) => (arity('user del', a, 1, 1), { op: 'user.del', name: a[0] }) },
  'user list': { usage: 'user list', summary: 'accounts with their role and grants (admin)', envFirst: false, prepare: (a) => (arity('user list', a, 0, 0), { op: 'user.list' }) },
  'user passwd': {
    usage: 'user passwd NAME', summary: "set another account's password (admin)", envFirst: false,
    prepare: async (a, _f, io) => (arity('user passwd', a, 1, 1), { op: 'user.passwd', name: a[0], verifier: makeVerifier(await io.newPassword(a[0]), io.passwordIterations) }),
  },
  passwd: {
    usage: 'passwd', summary: 'change your own password', envFirst: false,
    prepare: async (a, _f, io) => (arity('passwd', a, 0, 0), { op: 'user.passwd', verifier: makeVerifier(await io.newPassword(io.account), io.passwordIterations) }),
  },
  'token add': {
    usage: 'token add NAME [ENV…]', summary: 'create an agent token, printed once (admin)', envFirst: false,
    details: 'ENV: the environments its agents may follow (names, prefixes such as prod/*, or *; none: nothing). The token is made here and shown only now; the server keeps a verifier of it.',
    prepare: (a) => promised<Omit<Prepared, 'json'>>(() => {
      arity('token add', a, 1, 257);
      const token = newToken();
      return {
        request: { op: 'token.add', name: a[0], envs: a.slice(1), id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) },
        note: token.text,
      };
    }),
  },
  'token del': { usage: 'token del NAME', summary: 'revoke an agent token (admin); its agents are disconnected', envFirst: false, prepare: (a) => (arity('token del', a, 1, 1), { op: 'token.del', name: a[0] }) },
  'token list': { usage: 'token list', summary: 'agent tokens with their grants (admin)', envFirst: false, prepare: (a) => (arity('token list', a, 0, 0), { op: 'token.list' }) },
  audit: {
    usage: 'audit [--env ENV] [--user U] [--since TIME] [--limit N]', summary: 'who did what, when, from where, and how it ended (admin)', envFirst: false,
    details: 'TIME: 2026-12-01T08:00:00Z, or an age such as 30m, 12h, 7d. Newest first; 100 entries unless --limit says.',
    prepare: (a, f) => {
      arity('audit', a, 0, 0);
      const req: AdminRequest = { op: 'audit' };
      if (f.env !== undefined) req.env = f.env;
      if (f.user !== undefined) req.user = f.user;
      if (f.since !== undefined) req.since = f.since;
      if (f.limit !== undefined) req.limit = f.limit;
      return req;
    },
  },
};

/** Names a user can type first (for help and completion). */
export const COMMAND_NAMES = Object.keys(COMMANDS);

/** The command named by the first one or two words, and the words after it. */
export function findCommand(args: string[]): { name: string; rest: string[] } | undefined {
  const two = `${args[0]} ${args[1] ?? ''}`.trim();
  const name = COMMANDS[two] !== undefined ? two : args[0];
  return COMMANDS[name] === undefined ? undefined : { name, rest: args.slice(name.split(' ').length) };
}

/**
 * Parses command words (flags may appear anywhere) and prepares the request.
 * With `currentEnv` (the REPL's `use ENV`), commands that take an
 * environment first get that one.
 */
export async function prepareCommand(words: string[], io: CommandIO, currentEnv?: string): Promise<Prepared> {
  const args: string[] = [];
  const flags: Flags = { replace: false, values: false, own: false, explain: false, none: false, show: false, dryRun: false, allowGrowth: false, whole: false };
  const limited: string[] = [];
  let json = false;
  let raw = false;
  const value = (i: number, name: string): string => {
    const v = words[i];
    if (v === undefined) throw usage(`${name} takes a value`);
    return v;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === '--json') json = true;
    else if (w === '--raw') raw = true;
    else if (w === '--replace') flags.replace = true;
    else if (w === '--limit') {
      const n = value(++i, '--limit');
      if (!/^\d+$/.test(n) || Number(n) < 1) throw usage('--limit takes a positive number');
      flags.limit = Number(n);
    } else if (w === '--env') flags.env = value(++i, '--env');
    else if (w === '--user') flags.user = value(++i, '--user');
    else if (w === '--since') flags.since = parseSince(value(++i, '--since'));
    else if (w === '--agent') flags.agent = value(++i, '--agent');
    else if (w === '--values') flags.values = true;
    else if (w === '--before') flags.before = revision(value(++i, '--before'));
    else if (w === '--after') flags.after = value(++i, '--after');
    else if (w === '--read') flags.reads = [...(flags.reads ?? []), ...value(++i, '--read').split(',').filter((g) => g !== '')];
    else if (w === '--mode') {
      flags.mode = schemaMode(value(++i, '--mode'));
      limited.push(w);
    } else if (w === '--version') {
      flags.version = schemaVersion(value(++i, '--version'));
      limited.push(w);
    } else if (FLAG_COMMANDS[w]?.flag !== undefined) {
      flags[FLAG_COMMANDS[w].flag] = true;
      limited.push(w);
    } else if (w.startsWith('--') && w.length > 2 && !/^--?\d/.test(w)) throw usage(`unknown option ${w}`);
    else args.push(w);
  }
  if (args.length === 0) throw usage('no command given (try: help)');
  const found = findCommand(args);
  if (found === undefined) {
    const group = ['env', 'user', 'token', 'schema'].includes(args[0]) ? args[0] : undefined;
    throw usage(group !== undefined ? `usage: ${COMMAND_NAMES.filter((c) => c.startsWith(`${group} `)).join(' | ')}` : `unknown command ${JSON.stringify(args[0])} (try: help)`);
  }
  const spec = COMMANDS[found.name];
  const rest = spec.envFirst && currentEnv !== undefined ? [currentEnv, ...found.rest] : found.rest;
  if (raw && (found.name !== 'get' || json)) throw usage(json ? '--raw and --json do not go together' : '--raw goes with get only (--json prints any result exactly)');
  for (const w of limited) {
    const { commands } = FLAG_COMMANDS[w];
    if (!commands.includes(found.name)) throw usage(`${w} goes with ${commands.join(', ')} only`);
  }
  if (raw && flags.explain) throw usage('--raw and --explain do not go together (--json prints the explanation as data)');
  const prepared = await spec.prepare(rest, flags, io);
  if ('request' in prepared) return { ...prepared, json };
  return raw ? { request: prepared, json, raw } : { request: prepared, json };
}

export function helpText(command?: string): string {
  if (command !== undefined && command !== '') {
    const spec = COMMANDS[command];
    const group = COMMAND_NAMES.filter((c) => c.startsWith(`${command} `));
    if (spec === undefined && group.length > 0) return group.map((c) => helpText(c)).join('\n');
    if (spec === undefined) throw usage(`no command ${JSON.stringify(command)} (try: help)`);
    return [`usage: ${spec.usage}`, `  ${spec.summary}.`, ...(spec.details === undefined ? [] : [`  ${spec.details}`])].join('\n');
  }
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return [
    'Commands (--json on any of them prints the result as JSON, exactly as the server sent it, and a write refused by schemas as {code, status, message, violations, more}; otherwise control characters show escaped):',
    ...lines,
    `  ${'help [COMMAND]'.padEnd(width)}  this list, or more about one command`,
    'In the REPL also: use ENV (later commands act on ENV), use (none), quit (or Ctrl-D).',
  ].join('\n');
}

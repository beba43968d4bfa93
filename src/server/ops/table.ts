import { ADMIN_OPS, WireError, type AdminOp, type AdminRequest, type ResultOf } from '../../protocol/index.js';
import { RequestError } from '../errors.js';

/**
 * What an operation needs of the account that asks (access/permissions.ts applies it):
 * - `read`: any account, in an environment it reads (or about none);
 * - `write`: an editor in an environment granted to it, or an admin;
 * - `admin`: an admin;
 * - `self`: any account, acting on itself (its own password, its own session's watches).
 */
export type Permission = 'read' | 'write' | 'admin' | 'self';
export const PERMISSION_NAMES: readonly Permission[] = ['read', 'write', 'admin', 'self'];

/**
 * The layer whose handler runs an operation: the hub (the configuration, in
 * this folder) or access control (accounts, tokens, the audit trail and a
 * session's watches), which is above this folder and supplies its own.
 */
export type Runner = 'hub' | 'access';

export type RequestOf<K extends AdminOp> = Extract<AdminRequest, { op: K }>;

/** One operation: what it needs, what it does, who runs it. */
export interface Operation<K extends AdminOp = AdminOp> {
  permission: Permission;
  /** Writes configuration: makes a release, and carries a request id (Request.rid) that answers a retry with the first result. */
  writes: boolean;
  /** Answers with a page that grows with the data: such reads take turns (ReadGate), and go one at a time per session. */
  paged: boolean;
  runBy: Runner;
  /** What the audit records of the request besides its environment: names and counts, never a value or a secret. */
  audit?: (req: RequestOf<K>) => string;
  /**
   * What a write is checked against the schemas for (docs/schemas.md), every write saying which:
   * - `views`: every merged view it changes, each changed key and each whole view a schema covers
   *   (ConfigWrites.write checks the views its plan changes, under the store's lock);
   * - `data`: a schema change, against the data the schema covers (enforce mode);
   * - `nothing`: it changes no value a schema could refuse (an empty environment made, or one removed).
   */
  schemaCheck?: 'views' | 'data' | 'nothing';
}

const name = (text: string): string => text.slice(0, 256);
const schemaName = (req: { envPattern: string; keyPattern: string; whole?: boolean }): string =>
  `${name(req.envPattern)} ${name(req.keyPattern)}${req.whole === true ? ' (whole)' : ''}`;
const grants = (label: string, envs: readonly string[] | undefined): string => (envs?.length ? ` ${label} ${envs.join(',').slice(0, 200)}` : '');

/**
 * The table of operations: every admin operation of the protocol is one
 * entry. Access control checks a request against its entry's permission and
 * runs it with the handler its runner supplied (`checkedHandlers`); the hub
 * and the session read `writes` and `paged`. Nothing else lists operations.
 */
export const OPERATIONS = {
  'env.add': { permission: 'admin', writes: true, paged: false, runBy: 'hub', schemaCheck: 'nothing' },
  'env.del': { permission: 'admin', writes: true, paged: false, runBy: 'hub', schemaCheck: 'nothing' },
  'env.list': { permission: 'read', writes: false, paged: false, runBy: 'hub' },
  // A write to the environment: rights on it, and read rights on each parent (writes.ts checks those).
  'env.layers': {
    permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views',
    audit: (req) => (req.parents.length === 0 ? 'no parents' : `parents ${req.parents.join(', ').slice(0, 400)}`),
  },
  'env.show': { permission: 'read', writes: false, paged: false, runBy: 'hub' },
  set: { permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views', audit: (req) => `key ${name(req.key)}` },
  get: {
    permission: 'read', writes: false, paged: false, runBy: 'hub',
    audit: (req) => `key ${name(req.key)}${req.own === true ? ' (own)' : ''}${req.explain === true ? ' (explain)' : ''}`,
  },
  del: { permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views', audit: (req) => `key ${name(req.key)}` },
  list: { permission: 'read', writes: false, paged: true, runBy: 'hub', audit: (req) => (req.prefix === undefined ? '' : `prefix ${name(req.prefix)}`) },
  merge: { permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views', audit: (req) => `key ${name(req.key)}` },
  clear: {
    permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views',
    // The last word of a path may be a value to take out of an array: only the words before it are names.
    audit: (req) => `key ${name(req.key)}${req.path.length > 1 ? ` path ${req.path.slice(0, -1).join('.').slice(0, 200)}` : ''}${req.path.length ? ', removing what the last path word names (not recorded)' : ''}`,
  },
  unset: {
    permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views',
    audit: (req) => `key ${name(req.key)}${req.path.length > 1 ? ` path ${req.path.slice(0, -1).join('.').slice(0, 200)}` : ''}${req.path.length ? ', hiding what the last path word names (not recorded)' : ''}`,
  },
  apply: { permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views', audit: (req) => `${req.entries.length} keys${req.replace ? ', replacing the rest' : ''}` },
  // Writes nothing, but costs what the apply would (every view it changes is worked out): for those who may apply it.
  plan: { permission: 'write', writes: false, paged: false, runBy: 'hub', audit: (req) => `${req.entries.length} keys${req.replace ? ', replacing the rest' : ''}` },
  history: { permission: 'read', writes: false, paged: true, runBy: 'hub', audit: (req) => (req.key === undefined ? '' : `key ${name(req.key)}`) },
  diff: { permission: 'read', writes: false, paged: true, runBy: 'hub', audit: (req) => `from ${req.from}${req.to === undefined ? '' : ` to ${req.to}`}` },
  rollback: { permission: 'write', writes: true, paged: false, runBy: 'hub', schemaCheck: 'views', audit: (req) => `to ${req.rev}` },
  // Schemas: set by admins (ajv runs a schema as code: docs/schemas.md#trust); read by every account, whose writes they check.
  'schema.set': {
    permission: 'admin', writes: true, paged: false, runBy: 'hub', schemaCheck: 'data',
    audit: (req) => `schema ${schemaName(req)}, ${req.mode ?? 'enforce'}, ${Buffer.byteLength(req.schema)} bytes as sent`,
  },
  // With a version, it reads the schema's history back to it: a read that takes turns, as history does.
  'schema.get': { permission: 'read', writes: false, paged: true, runBy: 'hub', audit: (req) => `schema ${schemaName(req)}` },
  'schema.del': { permission: 'admin', writes: true, paged: false, runBy: 'hub', schemaCheck: 'nothing', audit: (req) => `schema ${schemaName(req)}` },
  'schema.list': { permission: 'read', writes: false, paged: false, runBy: 'hub' },
  'schema.history': { permission: 'read', writes: false, paged: true, runBy: 'hub', audit: (req) => `schema ${schemaName(req)}` },
  'schema.rollback': {
    permission: 'admin', writes: true, paged: false, runBy: 'hub', schemaCheck: 'data', audit: (req) => `schema ${schemaName(req)} to version ${req.version}`,
  },
  status: { permission: 'read', writes: false, paged: false, runBy: 'hub' },
  'status.local': { permission: 'read', writes: false, paged: false, runBy: 'hub' },
  'user.add': {
    permission: 'admin', writes: false, paged: false, runBy: 'access',
    audit: (req) => `account ${req.name.slice(0, 64)} role ${req.role.slice(0, 16)}${grants('envs', req.envs)}${grants('reads', req.reads)}`,
  },
  'user.del': { permission: 'admin', writes: false, paged: false, runBy: 'access', audit: (req) => `account ${req.name.slice(0, 64)}` },
  'user.list': { permission: 'admin', writes: false, paged: false, runBy: 'access' },
  // Without a name: one's own password; with another's name it needs admin (permissions.ts).
  'user.passwd': { permission: 'self', writes: false, paged: false, runBy: 'access', audit: (req) => (req.name === undefined ? 'own password' : `account ${req.name.slice(0, 64)}`) },
  'token.add': { permission: 'admin', writes: false, paged: false, runBy: 'access', audit: (req) => `token ${req.name.slice(0, 64)} id ${req.id.slice(0, 12)}${grants('envs', req.envs)}` },
  'token.del': { permission: 'admin', writes: false, paged: false, runBy: 'access', audit: (req) => `token ${req.name.slice(0, 64)}` },
  'token.list': { permission: 'admin', writes: false, paged: false, runBy: 'access' },
  audit: { permission: 'admin', writes: false, paged: false, runBy: 'access' },
  watch: { permission: 'read', writes: false, paged: false, runBy: 'access' },
  // Stops what the session follows: nothing to read, whatever the environment.
  unwatch: { permission: 'self', writes: false, paged: false, runBy: 'access' },
} as const satisfies { [K in AdminOp]: Operation<K> };

/** The entry of an operation. */
export function operation(op: AdminOp): Operation {
  // The decoder refuses unknown operations first; a caller that skipped it gets the same answer, not a crash.
  if (!Object.hasOwn(OPERATIONS, op)) throw new RequestError(WireError.BAD_REQUEST, `unknown operation ${JSON.stringify(String(op)).slice(0, 80)}`);
  return OPERATIONS[op] as Operation;
}

/** The operations `runner` runs. */
export type OpsRunBy<R extends Runner> = { [K in AdminOp]: (typeof OPERATIONS)[K]['runBy'] extends R ? K : never }[AdminOp];

export type Handler<K extends AdminOp, C> = (req: RequestOf<K>, call: C) => Promise<ResultOf[K]> | ResultOf[K];

/** A handler for each operation `runner` runs, given what the runner passes them (`C`). */
export type Handlers<R extends Runner, C> = { [K in OpsRunBy<R>]: Handler<K, C> };

/**
 * A runner's handlers, checked as it is built: one for every entry it runs,
 * none for an operation the table lacks or another layer runs. A missing
 * handler is refused here, when the server is put together, not when the
 * first request for it arrives.
 */
export function checkedHandlers<R extends Runner, C>(runner: R, handlers: Handlers<R, C>): Handlers<R, C> {
  const given = handlers as Partial<Record<string, unknown>>;
  const wrong: string[] = [];
  for (const op of Object.keys(given)) {
    if (!Object.hasOwn(OPERATIONS, op)) wrong.push(`${op} is not an operation of the table`);
    else if (operation(op as AdminOp).runBy !== runner) wrong.push(`${op} is run by ${operation(op as AdminOp).runBy}, not by ${runner}`);
    else if (typeof given[op] !== 'function') wrong.push(`the handler of ${op} is not a function`);
  }
  for (const op of ADMIN_OPS) {
    if (operation(op).runBy === runner && !Object.hasOwn(given, op)) wrong.push(`${op} has no handler`);
  }
  if (wrong.length > 0) throw new Error(`the ${runner}'s handlers do not match the table of operations: ${wrong.join('; ')}`);
  return handlers;
}

/** Runs `req` with its handler from a checked set of handlers of its runner. */
export function runHandler<R extends Runner, C>(handlers: Handlers<R, C>, req: RequestOf<OpsRunBy<R>>, call: C): unknown {
  const handler = (handlers as unknown as Record<string, (req: AdminRequest, call: C) => unknown>)[req.op];
  return handler(req, call);
}

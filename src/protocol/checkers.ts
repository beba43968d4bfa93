import { MessageType, Role } from './codes.js';
import { CHAIN_HEX, CHAIN_PATTERN } from './chain.js';
import { CONTROL_CHARACTERS } from './text.js';
import { RESERVED_ENV_PREFIX } from './shapes.js';
import {
  arrayOf, bool, fail, literal, nullable, obj, opt, pair, recordOf, str, uint,
  type Check, type ObjCheck,
} from './check.js';
import type { MemberState, Message } from './messages.js';
import type { AdminOp, AdminRequest, SchemaMode } from './requests.js';
import { MAX_VIOLATIONS, type BigValue, type ResultOf } from './results.js';
import type { Change, Entry, EnvRev, KeyChange } from './shapes.js';

/**
 * The checked shape of every message, admin request and result: what a
 * receiver accepts, field by field. codec.ts decodes with them;
 * docs/protocol.md names the same maps with the same fields, and a test
 * compares the two (NAMED_SHAPES, MESSAGE_CHECKERS, REQUEST_CHECKERS).
 */

/** A chain value (chain.ts): exactly CHAIN_HEX lowercase hex digits, so a peer cannot make servers keep long strings per agent. */
const chainValue: Check<string> = (v, p) => (typeof v === 'string' && CHAIN_PATTERN.test(v) ? v : fail(p, `a chain value (${CHAIN_HEX} hex digits)`));
/** A name shown to people (who logs in, a client's or a server's id): a forged one must not act on their terminals. */
const shownName: Check<string> = (v, p) => (typeof v === 'string' && !CONTROL_CHARACTERS.test(v) ? v : fail(p, 'a string without control characters'));
/** What a release follows: a chain value, or '' before an environment's first release. */
const chainFollowed: Check<string> = (v, p) => (v === '' ? v : chainValue(v, p));
/** An agent's id as status looks it up: bounded, so that a request forwarded to every peer stays small. */
const agentId: Check<string> = (v, p) => (typeof v === 'string' && v.length <= 256 ? v : fail(p, 'an agent id of at most 256 characters'));
/** Response.res: not checked by the decoder, which does not know the request; the requester checks it (checkResult). */
const anything: Check<unknown> = (v) => v;

/**
 * An environment an agent follows: never one of the servers' own (RESERVED_ENV_PREFIX), whatever its
 * token grants. (An admin naming one is told it does not exist: access/control.ts.)
 */
const envName: Check<string> = (v, p) => (typeof v === 'string' && !v.startsWith(RESERVED_ENV_PREFIX) ? v : fail(p, `an environment name (not starting with ${RESERVED_ENV_PREFIX})`));
const envRev: ObjCheck<EnvRev> = obj({ env: envName, rev: uint, chain: opt(chainValue) });
const schemaMode = literal<SchemaMode>('enforce', 'warn');
const schemaViolation = obj({ env: str, key: str, path: str, keyword: str, message: str, schema: str, version: uint });
const entry: Check<Entry> = pair(str, str);
const change: Check<Change> = pair(str, nullable(str));
const keyChange: Check<KeyChange> = (v, p) => {
  if (!Array.isArray(v) || v.length !== 3) return fail(p, 'a [key, before, after] triple');
  return [str(v[0], `${p}[0]`), nullable(str)(v[1], `${p}[1]`), nullable(str)(v[2], `${p}[2]`)];
};
const role = literal<Role>(Role.server, Role.agent, Role.admin, Role.peer);
const verifier = obj({ salt: str, iterations: uint, storedKey: str, serverKey: str });
/** Servers in one cluster: a full mesh of links, so tens, not thousands. */
export const MAX_MEMBERS = 256;
const memberEntry = obj({
  id: str, gen: uint, ver: uint, addrs: arrayOf(str, 16), peer: str,
  state: literal<MemberState>('alive', 'draining', 'left'), agents: uint, head: uint,
});
const peerServer = obj({ addr: str, agents: uint, state: str });
/** The most layers a Release or Snapshot names: a server sending a longer merge order keeps its highest ones. */
export const MAX_LAYER_REVS = 64;
/** Release.layers and Snapshot.layers: [env, rev] pairs, bounded so that a peer cannot make agents keep long lists. */
const layerRevs = arrayOf(pair(str, uint), MAX_LAYER_REVS);

/** The arguments of each admin operation (besides `op`). */
export const REQUEST_CHECKERS: { [K in AdminOp]: ObjCheck<Omit<Extract<AdminRequest, { op: K }>, 'op'>> } = {
  'env.add': obj({ env: str }),
  'env.del': obj({ env: str }),
  'env.list': obj({}),
  'env.layers': obj({ env: str, parents: arrayOf(str, 64), allowGrowth: opt(bool) }),
  'env.show': obj({ env: str }),
  set: obj({ env: str, key: str, value: str, allowGrowth: opt(bool) }),
  get: obj({ env: str, key: str, own: opt(bool), explain: opt(bool) }),
  del: obj({ env: str, key: str }),
  list: obj({ env: str, prefix: opt(str), after: opt(str), own: opt(bool) }),
  merge: obj({ env: str, key: str, value: str, allowGrowth: opt(bool) }),
  clear: obj({ env: str, key: str, path: arrayOf(str, 1024) }),
  unset: obj({ env: str, key: str, path: arrayOf(str, 1024) }),
  apply: obj({ env: str, entries: arrayOf(entry), replace: bool, allowGrowth: opt(bool) }),
  plan: obj({ env: str, entries: arrayOf(entry), replace: bool }),
  history: obj({ env: str, key: opt(str), limit: opt(uint), before: opt(uint), values: opt(bool), own: opt(bool) }),
  diff: obj({ env: str, from: uint, to: opt(uint), after: opt(str), values: opt(bool) }),
  rollback: obj({ env: str, rev: uint, allowGrowth: opt(bool) }),
  'schema.set': obj({ envPattern: str, keyPattern: str, schema: str, mode: opt(schemaMode), whole: opt(bool) }),
  'schema.get': obj({ envPattern: str, keyPattern: str, whole: opt(bool), version: opt(uint) }),
  'schema.del': obj({ envPattern: str, keyPattern: str, whole: opt(bool) }),
  'schema.list': obj({ env: opt(str) }),
  'schema.history': obj({ envPattern: str, keyPattern: str, whole: opt(bool) }),
  'schema.rollback': obj({ envPattern: str, keyPattern: str, whole: opt(bool), version: uint }),
  status: obj({ env: opt(str), agent: opt(agentId) }),
  'status.local': obj({ env: opt(str), agent: opt(agentId) }),
  'user.add': obj({ name: str, role: str, envs: arrayOf(str, 1024), reads: opt(arrayOf(str, 1024)), verifier }),
  'user.del': obj({ name: str }),
  'user.list': obj({}),
  'user.passwd': obj({ name: opt(str), verifier }),
  'token.add': obj({ name: str, envs: arrayOf(str, 1024), id: str, verifier }),
  'token.del': obj({ name: str }),
  'token.list': obj({}),
  audit: obj({ env: opt(str), user: opt(str), since: opt(uint), limit: opt(uint) }),
  watch: obj({ env: str }),
  unwatch: obj({ env: str }),
};

const requestOp = obj({ op: str });
const adminRequest: Check<AdminRequest> = (v, p) => {
  const { op } = requestOp(v, p);
  if (!Object.prototype.hasOwnProperty.call(REQUEST_CHECKERS, op)) return fail(`${p}.op`, 'a known admin operation');
  // The table is keyed by AdminOp, so the arguments checked are those of this op.
  return { op, ...REQUEST_CHECKERS[op as AdminOp](v, p) } as AdminRequest;
};

/** Every message, by its type number. */
export const MESSAGE_CHECKERS = {
  [MessageType.Hello]: obj({
    t: literal(MessageType.Hello), v: uint, role, id: shownName, user: opt(shownName), nonce: opt(str), peers: opt(arrayOf(str, 1024)),
  }),
  [MessageType.Challenge]: obj({ t: literal(MessageType.Challenge), nonce: str, salt: str, iterations: uint }),
  [MessageType.Proof]: obj({ t: literal(MessageType.Proof), proof: str }),
  [MessageType.Welcome]: obj({ t: literal(MessageType.Welcome), signature: str, account: str, role: str, envs: arrayOf(str, 1024), iterations: opt(uint), ping: opt(uint) }),
  [MessageType.Subscribe]: obj({ t: literal(MessageType.Subscribe), all: bool, envs: arrayOf(envRev) }),
  [MessageType.Snapshot]: obj({ t: literal(MessageType.Snapshot), env: str, rev: uint, entries: arrayOf(entry), chain: opt(chainValue), layers: opt(layerRevs) }),
  [MessageType.Release]: obj({
    t: literal(MessageType.Release), env: str, rev: uint, prev: uint, time: uint, author: str, op: str,
    changes: arrayOf(change), drop: opt(bool), chain: opt(chainValue), pchain: opt(chainFollowed), via: opt(str), grp: opt(bool), layers: opt(layerRevs),
  }),
  [MessageType.GroupEnd]: obj({ t: literal(MessageType.GroupEnd) }),
  [MessageType.Ack]: obj({ t: literal(MessageType.Ack), env: str, rev: uint, chain: opt(chainValue) }),
  [MessageType.Error]: obj({
    t: literal(MessageType.Error), code: uint, msg: str, id: opt(uint), retry: opt(uint), v: opt(arrayOf(schemaViolation, MAX_VIOLATIONS)), more: opt(uint),
  }),
  [MessageType.Ping]: obj({ t: literal(MessageType.Ping), n: uint }),
  [MessageType.Pong]: obj({ t: literal(MessageType.Pong), n: uint, next: opt(uint) }),
  [MessageType.Request]: obj({ t: literal(MessageType.Request), id: uint, req: adminRequest, rid: opt(str) }),
  [MessageType.Response]: obj({ t: literal(MessageType.Response), id: uint, res: anything }),
  [MessageType.Gossip]: obj({
    t: literal(MessageType.Gossip), members: arrayOf(memberEntry, MAX_MEMBERS), envs: arrayOf(pair(str, uint)), gone: opt(arrayOf(str)),
  }),
  [MessageType.Peers]: obj({ t: literal(MessageType.Peers), servers: arrayOf(peerServer, MAX_MEMBERS) }),
  [MessageType.Move]: obj({ t: literal(MessageType.Move), to: opt(str), within: uint, reason: str }),
  [MessageType.StoreCheck]: obj({ t: literal(MessageType.StoreCheck), store: str, key: str }),
  [MessageType.StoreProof]: obj({ t: literal(MessageType.StoreProof), mac: str }),
} satisfies { [K in MessageType]: ObjCheck<Extract<Message, { t: K }>> };

const differ = obj({ key: str, layer: str });
const writeResult = obj({
  env: str, rev: uint, changed: uint, replayed: opt(bool), differs: opt(arrayOf(differ)),
  warnings: opt(arrayOf(schemaViolation, MAX_VIOLATIONS)), warningsMore: opt(uint),
});
const schemaInfoFields = {
  envPattern: str, keyPattern: str, whole: bool, mode: schemaMode, version: uint, time: uint, author: str, bytes: uint, failing: opt(uint),
};
const schemaInfo = obj(schemaInfoFields);
const schemaGetResult = obj({ ...schemaInfoFields, schema: str });
const schemaListResult = obj({ schemas: arrayOf(schemaInfo) });
const schemaVersion = obj({ version: uint, rev: uint, time: uint, author: str, mode: opt(schemaMode), deleted: opt(bool), bytes: uint });
const schemaHistoryResult = obj({ versions: arrayOf(schemaVersion) });
const schemaWriteResult = obj({
  envPattern: str, keyPattern: str, whole: bool, version: uint, rev: uint, changed: uint, mode: opt(schemaMode), deleted: opt(bool),
  failing: opt(uint), warnings: opt(arrayOf(schemaViolation, MAX_VIOLATIONS)), replayed: opt(bool),
});
const schemaWarning = obj({ schema: str, version: uint, failing: uint });
const done = obj({ done: str });
const leafStep: Check<string | number> = (v, p) => (typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v) && v >= 0) ? v : fail(p, 'an object key or an array index'));
const explainLeaf = obj({ path: arrayOf(leafStep), layer: str, rev: opt(uint), author: opt(str), hidden: opt(arrayOf(str)) });
const getResult = obj({ env: str, rev: uint, key: str, value: str, explain: opt(arrayOf(explainLeaf)), explainMore: opt(uint) });
const planView = obj({ env: str, changed: uint });
const planResult = obj({
  env: str, rev: uint, added: arrayOf(str), changed: arrayOf(str), removed: arrayOf(str), views: arrayOf(planView),
  violations: opt(arrayOf(schemaViolation, MAX_VIOLATIONS)), violationsMore: opt(uint), warnings: opt(arrayOf(schemaViolation, MAX_VIOLATIONS)), warningsMore: opt(uint),
});
const envShowResult = obj({ env: str, rev: uint, parents: arrayOf(str), order: arrayOf(str), dependents: arrayOf(str) });
const listResult = obj({ env: str, rev: uint, entries: arrayOf(entry), next: opt(str) });
const envInfo = obj({ env: str, rev: uint, keys: uint, parents: opt(arrayOf(str)) });
const envListResult = obj({ envs: arrayOf(envInfo) });
const serverInfo = obj({ id: str, version: str, listen: str, store: str, uptimeMs: uint, workers: uint, counters: recordOf(uint) });
const holder: Check<[number, number, string]> = (v, p) => {
  if (!Array.isArray(v) || v.length !== 3) return fail(p, 'a [revision, agents, chain] triple');
  return [uint(v[0], `${p}[0]`), uint(v[1], `${p}[1]`), str(v[2], `${p}[2]`)];
};
const laggingAgent = obj({ id: str, addr: str, server: str, rev: uint });
const envAgents = obj({
  env: str, rev: uint, holders: arrayOf(holder), lagging: arrayOf(laggingAgent), laggingTotal: uint,
  chain: opt(str), releasedMs: opt(uint),
});
const agentInfo = obj({ id: str, addr: str, since: uint, envs: arrayOf(envRev), ackedMs: opt(uint) });
const foundAgent = obj({ id: str, addr: str, since: uint, envs: arrayOf(envRev), ackedMs: opt(uint), server: str });
const bigValue: Check<BigValue> = (v, p) => {
  if (!Array.isArray(v) || v.length !== 4) return fail(p, 'a [change, side, bytes, sha256] quadruple');
  return [uint(v[0], `${p}[0]`), literal<1 | 2>(1, 2)(v[1], `${p}[1]`), uint(v[2], `${p}[2]`), str(v[3], `${p}[3]`)];
};
const historyRelease = obj({
  rev: uint, prev: uint, time: uint, author: str, op: str, via: opt(str), parents: opt(arrayOf(str)),
  changes: arrayOf(keyChange), big: opt(arrayOf(bigValue)), more: opt(uint),
});
const historyResult = obj({ env: str, releases: arrayOf(historyRelease), next: opt(uint) });
const diffResult = obj({ env: str, from: uint, to: uint, changes: arrayOf(keyChange), big: opt(arrayOf(bigValue)), next: opt(str) });
const serverRow = obj({
  id: str, gen: uint, state: str, addrs: arrayOf(str), head: uint, lag: uint, agents: uint, heardMs: uint, answered: bool,
});
const clusterStatus = obj({ head: uint, servers: arrayOf(serverRow), envs: arrayOf(envAgents), found: opt(arrayOf(foundAgent)) });
const statusResult = obj({
  server: serverInfo, envs: arrayOf(envInfo), agentsTotal: uint, agents: arrayOf(agentInfo), cluster: clusterStatus, schemaWarnings: opt(arrayOf(schemaWarning)),
});
const localStatus = obj({ server: serverInfo, gen: uint, head: uint, agentsTotal: uint, envs: arrayOf(envAgents), found: opt(arrayOf(agentInfo)) });
const userInfo = obj({ name: str, role: str, envs: arrayOf(str), reads: opt(arrayOf(str)), created: uint });
const userListResult = obj({ users: arrayOf(userInfo) });
const tokenInfo = obj({ name: str, id: str, envs: arrayOf(str), created: uint });
const tokenListResult = obj({ tokens: arrayOf(tokenInfo) });
const auditEntry = obj({ seq: uint, time: uint, actor: str, addr: str, action: str, env: str, result: str, code: str, detail: str });
const auditResult = obj({ entries: arrayOf(auditEntry) });
const watchResult = obj({ env: str, rev: uint });

/** The result of each admin operation. */
export const RESULT_CHECKERS: { [K in AdminOp]: ObjCheck<ResultOf[K]> } = {
  'env.add': writeResult,
  'env.del': writeResult,
  'env.list': envListResult,
  'env.layers': writeResult,
  'env.show': envShowResult,
  set: writeResult,
  get: getResult,
  del: writeResult,
  list: listResult,
  merge: writeResult,
  clear: writeResult,
  unset: writeResult,
  apply: writeResult,
  plan: planResult,
  history: historyResult,
  diff: diffResult,
  rollback: writeResult,
  'schema.set': schemaWriteResult,
  'schema.get': schemaGetResult,
  'schema.del': schemaWriteResult,
  'schema.list': schemaListResult,
  'schema.history': schemaHistoryResult,
  'schema.rollback': schemaWriteResult,
  status: statusResult,
  'status.local': localStatus,
  'user.add': done,
  'user.del': done,
  'user.list': userListResult,
  'user.passwd': done,
  'token.add': done,
  'token.del': done,
  'token.list': tokenListResult,
  audit: auditResult,
  watch: watchResult,
  unwatch: done,
};

/** Every map inside a message or a result, by the name docs/protocol.md gives it. */
export const NAMED_SHAPES = {
  EnvRev: envRev,
  MemberEntry: memberEntry,
  PeerServer: peerServer,
  Verifier: verifier,
  WriteResult: writeResult,
  GetResult: getResult,
  ListResult: listResult,
  EnvListResult: envListResult,
  EnvInfo: envInfo,
  EnvShowResult: envShowResult,
  PlanResult: planResult,
  PlanView: planView,
  ExplainLeaf: explainLeaf,
  HistoryResult: historyResult,
  HistoryRelease: historyRelease,
  DiffResult: diffResult,
  StatusResult: statusResult,
  ServerInfo: serverInfo,
  AgentInfo: agentInfo,
  FoundAgent: foundAgent,
  ClusterStatus: clusterStatus,
  ServerRow: serverRow,
  EnvAgents: envAgents,
  LaggingAgent: laggingAgent,
  LocalStatus: localStatus,
  DoneResult: done,
  WatchResult: watchResult,
  UserListResult: userListResult,
  UserInfo: userInfo,
  TokenListResult: tokenListResult,
  TokenInfo: tokenInfo,
  AuditResult: auditResult,
  AuditEntry: auditEntry,
  SchemaViolation: schemaViolation,
  SchemaInfo: schemaInfo,
  SchemaGetResult: schemaGetResult,
  SchemaListResult: schemaListResult,
  SchemaVersion: schemaVersion,
  SchemaHistoryResult: schemaHistoryResult,
  SchemaWriteResult: schemaWriteResult,
  SchemaWarning: schemaWarning,
} satisfies Record<string, ObjCheck<unknown>>;

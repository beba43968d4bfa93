import { Packr, Unpackr } from 'msgpackr';
import { MessageType, Role, WireError } from './codes.js';
import { CHAIN_HEX, CHAIN_PATTERN } from './chain.js';
import { CONTROL_CHARACTERS } from './text.js';
import { ProtocolError } from './errors.js';
import { frame } from './frame.js';
import { DEFAULT_DECODE_LIMITS, scanBody, type DecodeLimits } from './scan.js';
import {
  arrayOf, bool, fail, literal, nullable, obj, opt, pair, recordOf, str, uint,
  type Check,
} from './check.js';
import type { MemberEntry, MemberState, Message, Snapshot } from './messages.js';
import type { AdminOp, AdminRequest } from './requests.js';
import type { BigValue, ResultOf } from './results.js';
import type { Change, Entry, EnvRev, KeyChange } from './shapes.js';

/**
 * msgpackr options, pinned here and nowhere else:
 * - useRecords false: plain msgpack maps that every language can decode;
 * - mapsAsObjects true: maps become plain objects (keys are always strings here);
 * - int64AsType 'number': revisions and times stay below 2^53 and are checked as safe integers;
 * - moreTypes false: no msgpackr-only extensions on the wire;
 * - skipValues [undefined]: an optional field left undefined is omitted, never
 *   written as msgpackr's "undefined" extension (maps then use fixmap when small).
 */
const MSGPACK_OPTIONS = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  moreTypes: false,
  bundleStrings: false,
  skipValues: [undefined],
} as const;

const packr = new Packr(MSGPACK_OPTIONS);
const unpackr = new Unpackr(MSGPACK_OPTIONS);

/** Encode a message body (msgpack, without the length prefix). */
export function encodeBody(message: Message): Buffer {
  return packr.pack(message);
}

/** Encode a message as one complete frame, ready to write to a socket. */
export function encodeMessage(message: Message): Buffer {
  return frame(encodeBody(message));
}

/** A Snapshot message, its fields in the order every encoder of it uses (entries last). */
export function snapshotMessage(env: string, rev: number, entries: Entry[], chain?: string): Snapshot {
  return chain === undefined || chain === ''
    ? { t: MessageType.Snapshot, env, rev, entries }
    : { t: MessageType.Snapshot, env, rev, chain, entries };
}

/**
 * A Snapshot frame built a part at a time, the same bytes encodeMessage
 * gives: `entries` packed in slices (each on its own, so a caller may yield
 * between them), then joined behind the message's other fields.
 */
export class SnapshotEncoder {
  private readonly parts: Buffer[] = [];
  private count = 0;
  /** `chain` as in Snapshot.chain; the same field order as `snapshotMessage` gives, so the bytes are the same. */
  constructor(private readonly env: string, private readonly rev: number, private readonly chain?: string) {}

  add(entries: [string, string][]): void {
    if (entries.length === 0) return;
    const packed = packr.pack(entries);
    // Drop the slice's own array header: the whole array gets one at the end.
    const first = packed[0]!;
    const header = first >= 0x90 && first <= 0x9f ? 1 : first === 0xdc ? 3 : 5;
    this.parts.push(packed.subarray(header));
    this.count += entries.length;
  }

  frame(): Buffer {
    // Every field but the entries, which come last and empty (one byte, 0x90), then the real array.
    const head = packr.pack(snapshotMessage(this.env, this.rev, [], this.chain));
    const n = this.count;
    const arrayHeader = n <= 15 ? Buffer.from([0x90 | n]) : n <= 0xffff ? Buffer.from([0xdc, n >> 8, n & 0xff]) : Buffer.from([0xdd, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    return frame(Buffer.concat([head.subarray(0, head.length - 1), arrayHeader, ...this.parts]));
  }
}

/** A chain value (chain.ts): exactly CHAIN_HEX lowercase hex digits, so a peer cannot make servers keep long strings per agent. */
const chainValue: Check<string> = (v, p) => (typeof v === 'string' && CHAIN_PATTERN.test(v) ? v : fail(p, `a chain value (${CHAIN_HEX} hex digits)`));
/** A name shown to people (who logs in, a client's or a server's id): a forged one must not act on their terminals. */
const shownName: Check<string> = (v, p) => (typeof v === 'string' && !CONTROL_CHARACTERS.test(v) ? v : fail(p, 'a string without control characters'));
/** What a release follows: a chain value, or '' before an environment's first release. */
const chainFollowed: Check<string> = (v, p) => (v === '' ? v : chainValue(v, p));
/** An agent's id as status looks it up: bounded, so that a request forwarded to every peer stays small. */
const agentId: Check<string> = (v, p) => (typeof v === 'string' && v.length <= 256 ? v : fail(p, 'an agent id of at most 256 characters'));
const envRev: Check<EnvRev> = obj({ env: str, rev: uint, chain: opt(chainValue) });
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
const memberEntry: Check<MemberEntry> = obj({
  id: str, gen: uint, ver: uint, addrs: arrayOf(str, 16), peer: str,
  state: literal<MemberState>('alive', 'draining', 'left'), agents: uint, head: uint,
});

const adminRequest: Check<AdminRequest> = (v, p) => {
  const op = obj({ op: str })(v, p).op;
  switch (op) {
    case 'env.add':
    case 'env.del':
      return { op, ...obj({ env: str })(v, p) };
    case 'env.list':
      return { op };
    case 'set':
    case 'merge':
      return { op, ...obj({ env: str, key: str, value: str })(v, p) };
    case 'get':
    case 'del':
      return { op, ...obj({ env: str, key: str })(v, p) };
    case 'list':
      return { op, ...obj({ env: str, prefix: opt(str), after: opt(str) })(v, p) };
    case 'clear':
      return { op, ...obj({ env: str, key: str, path: arrayOf(str, 1024) })(v, p) };
    case 'apply':
      return { op, ...obj({ env: str, entries: arrayOf(entry), replace: bool })(v, p) };
    case 'history':
      return { op, ...obj({ env: str, key: opt(str), limit: opt(uint), before: opt(uint), values: opt(bool) })(v, p) };
    case 'diff':
      return { op, ...obj({ env: str, from: uint, to: opt(uint), after: opt(str), values: opt(bool) })(v, p) };
    case 'rollback':
      return { op, ...obj({ env: str, rev: uint })(v, p) };
    case 'status':
    case 'status.local':
      return { op, ...obj({ env: opt(str), agent: opt(agentId) })(v, p) };
    case 'user.add':
      return { op, ...obj({ name: str, role: str, envs: arrayOf(str, 1024), reads: opt(arrayOf(str, 1024)), verifier })(v, p) };
    case 'user.del':
    case 'token.del':
      return { op, ...obj({ name: str })(v, p) };
    case 'user.list':
    case 'token.list':
      return { op };
    case 'user.passwd':
      return { op, ...obj({ name: opt(str), verifier })(v, p) };
    case 'token.add':
      return { op, ...obj({ name: str, envs: arrayOf(str, 1024), id: str, verifier })(v, p) };
    case 'audit':
      return { op, ...obj({ env: opt(str), user: opt(str), since: opt(uint), limit: opt(uint) })(v, p) };
    case 'watch':
    case 'unwatch':
      return { op, ...obj({ env: str })(v, p) };
    default:
      return fail(`${p}.op`, 'a known admin operation');
  }
};

const checkers = {
  [MessageType.Hello]: obj({
    t: literal(MessageType.Hello), v: uint, role, id: shownName, user: opt(shownName), nonce: opt(str), peers: opt(arrayOf(str, 1024)),
  }),
  [MessageType.Challenge]: obj({ t: literal(MessageType.Challenge), nonce: str, salt: str, iterations: uint }),
  [MessageType.Proof]: obj({ t: literal(MessageType.Proof), proof: str }),
  [MessageType.Welcome]: obj({ t: literal(MessageType.Welcome), signature: str, account: str, role: str, envs: arrayOf(str, 1024), iterations: opt(uint), ping: opt(uint) }),
  [MessageType.Subscribe]: obj({ t: literal(MessageType.Subscribe), all: bool, envs: arrayOf(envRev) }),
  [MessageType.Snapshot]: obj({ t: literal(MessageType.Snapshot), env: str, rev: uint, entries: arrayOf(entry), chain: opt(chainValue) }),
  [MessageType.Release]: obj({
    t: literal(MessageType.Release), env: str, rev: uint, prev: uint, time: uint, author: str, op: str,
    changes: arrayOf(change), drop: opt(bool), chain: opt(chainValue), pchain: opt(chainFollowed),
  }),
  [MessageType.Ack]: obj({ t: literal(MessageType.Ack), env: str, rev: uint, chain: opt(chainValue) }),
  [MessageType.Error]: obj({ t: literal(MessageType.Error), code: uint, msg: str, id: opt(uint), retry: opt(uint) }),
  [MessageType.Ping]: obj({ t: literal(MessageType.Ping), n: uint }),
  [MessageType.Pong]: obj({ t: literal(MessageType.Pong), n: uint, next: opt(uint) }),
  [MessageType.Request]: obj({ t: literal(MessageType.Request), id: uint, req: adminRequest, rid: opt(str) }),
  [MessageType.Response]: (v: unknown, p: string) => {
    const head = obj({ t: literal(MessageType.Response), id: uint })(v, p);
    return { ...head, res: (v as { res?: unknown }).res };
  },
  [MessageType.Gossip]: obj({
    t: literal(MessageType.Gossip), members: arrayOf(memberEntry, MAX_MEMBERS), envs: arrayOf(pair(str, uint)), gone: opt(arrayOf(str)),
  }),
  [MessageType.Peers]: obj({
    t: literal(MessageType.Peers), servers: arrayOf(obj({ addr: str, agents: uint, state: str }), MAX_MEMBERS),
  }),
  [MessageType.Move]: obj({ t: literal(MessageType.Move), to: opt(str), within: uint, reason: str }),
  [MessageType.StoreCheck]: obj({ t: literal(MessageType.StoreCheck), store: str, key: str }),
  [MessageType.StoreProof]: obj({ t: literal(MessageType.StoreProof), mac: str }),
} satisfies { [K in MessageType]: Check<Extract<Message, { t: K }>> };

/**
 * Decode one frame body into a typed message. The body is scanned against
 * `limits` first, so that msgpackr only ever builds a message whose cost is
 * bounded (LIMIT_EXCEEDED otherwise). Anything that is not a valid message of
 * this protocol version raises ProtocolError(MALFORMED).
 */
export function decodeBody(body: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Message {
  scanBody(body, limits);
  let raw: unknown;
  try {
    raw = unpackr.unpack(body);
  } catch (cause) {
    throw new ProtocolError(WireError.MALFORMED, 'frame body is not valid msgpack', { cause });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('message', 'a map');
  const t = (raw as { t?: unknown }).t;
  const check = typeof t === 'number' ? (checkers as Record<number, Check<Message>>)[t] : undefined;
  if (check === undefined) return fail('message.t', 'a known message type');
  return check(raw, 'message');
}

const writeResult = obj({ env: str, rev: uint, changed: uint, replayed: opt(bool) });
const done = obj({ done: str });
const envInfo = obj({ env: str, rev: uint, keys: uint });
const serverInfo = obj({ id: str, version: str, listen: str, store: str, uptimeMs: uint, workers: uint, counters: recordOf(uint) });
const holder: Check<[number, number, string]> = (v, p) => {
  if (!Array.isArray(v) || v.length !== 3) return fail(p, 'a [revision, agents, chain] triple');
  return [uint(v[0], `${p}[0]`), uint(v[1], `${p}[1]`), str(v[2], `${p}[2]`)];
};
const envAgents = obj({
  env: str, rev: uint, holders: arrayOf(holder),
  lagging: arrayOf(obj({ id: str, addr: str, server: str, rev: uint })), laggingTotal: uint,
  chain: opt(str), releasedMs: opt(uint),
});
const agentInfo = obj({ id: str, addr: str, since: uint, envs: arrayOf(envRev), ackedMs: opt(uint) });
const bigValue: Check<BigValue> = (v, p) => {
  if (!Array.isArray(v) || v.length !== 4) return fail(p, 'a [change, side, bytes, sha256] quadruple');
  return [uint(v[0], `${p}[0]`), literal<1 | 2>(1, 2)(v[1], `${p}[1]`), uint(v[2], `${p}[2]`), str(v[3], `${p}[3]`)];
};
const historyRelease = obj({
  rev: uint, prev: uint, time: uint, author: str, op: str, changes: arrayOf(keyChange), big: opt(arrayOf(bigValue)), more: opt(uint),
});
const resultCheckers: { [K in AdminOp]: Check<ResultOf[K]> } = {
  'env.add': writeResult,
  'env.del': writeResult,
  'env.list': obj({ envs: arrayOf(envInfo) }),
  set: writeResult,
  get: obj({ env: str, rev: uint, key: str, value: str }),
  del: writeResult,
  list: obj({ env: str, rev: uint, entries: arrayOf(entry), next: opt(str) }),
  merge: writeResult,
  clear: writeResult,
  apply: writeResult,
  history: obj({ env: str, releases: arrayOf(historyRelease), next: opt(uint) }),
  diff: obj({ env: str, from: uint, to: uint, changes: arrayOf(keyChange), big: opt(arrayOf(bigValue)), next: opt(str) }),
  rollback: writeResult,
  status: obj({
    server: serverInfo,
    envs: arrayOf(envInfo),
    agentsTotal: uint,
    agents: arrayOf(agentInfo),
    cluster: obj({
      head: uint,
      servers: arrayOf(obj({
        id: str, gen: uint, state: str, addrs: arrayOf(str), head: uint, lag: uint, agents: uint, heardMs: uint, answered: bool,
      })),
      envs: arrayOf(envAgents),
      found: opt(arrayOf(obj({ id: str, addr: str, since: uint, envs: arrayOf(envRev), ackedMs: opt(uint), server: str }))),
    }),
  }),
  'status.local': obj({ server: serverInfo, gen: uint, head: uint, agentsTotal: uint, envs: arrayOf(envAgents), found: opt(arrayOf(agentInfo)) }),
  'user.add': done,
  'user.del': done,
  'user.list': obj({ users: arrayOf(obj({ name: str, role: str, envs: arrayOf(str), reads: opt(arrayOf(str)), created: uint })) }),
  'user.passwd': done,
  'token.add': done,
  'token.del': done,
  'token.list': obj({ tokens: arrayOf(obj({ name: str, id: str, envs: arrayOf(str), created: uint })) }),
  audit: obj({
    entries: arrayOf(obj({ seq: uint, time: uint, actor: str, addr: str, action: str, env: str, result: str, code: str, detail: str })),
  }),
  watch: obj({ env: str, rev: uint }),
  unwatch: done,
};

/** Check the `res` of a Response against the operation of the request it answers. */
export function checkResult<K extends AdminOp>(op: K, res: unknown): ResultOf[K] {
  if (!Object.prototype.hasOwnProperty.call(resultCheckers, op)) return fail('result', `the result of a known operation, not ${String(op)}`);
  return resultCheckers[op](res, `result(${op})`);
}

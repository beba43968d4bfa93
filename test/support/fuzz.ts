/**
 * Seeded generators of protocol input for the fuzz tests: random values,
 * valid messages of every type, mutated messages and msgpack token soup.
 * Everything is determined by the seed, so a failure can be replayed.
 */
import type { AdminOp, AdminRequest, Message } from '../../src/protocol/index.js';
import { WireError } from '../../src/protocol/index.js';

// ---------------------------------------------------------------------------
// Seeded PRNG and generators
// ---------------------------------------------------------------------------

export type Rng = () => number;

/** mulberry32: small, fast, good enough for fuzzing; fully determined by the seed. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
export const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)];
export const chance = (rng: Rng, p: number): boolean => rng() < p;

export function randomBytes(rng: Rng, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = int(rng, 256);
  return out;
}

/** Well-formed strings (no lone surrogates), mixing ASCII, Latin, CJK and astral characters. */
export function randomText(rng: Rng, maxLength = 12): string {
  const length = chance(rng, 0.03) ? 200 + int(rng, 200) : int(rng, maxLength + 1);
  let s = '';
  for (let i = 0; i < length; i++) {
    const kind = int(rng, 10);
    if (kind < 6) s += String.fromCharCode(0x20 + int(rng, 0x5f));
    else if (kind < 8) s += String.fromCharCode(0xa0 + int(rng, 0x500));
    else if (kind < 9) s += String.fromCharCode(0x4e00 + int(rng, 0x1000));
    else s += String.fromCodePoint(0x1f300 + int(rng, 0x300));
  }
  return s;
}

/** Any JS string, including lone surrogates and control characters. */
export function randomAnyString(rng: Rng): string {
  if (chance(rng, 0.7)) return randomText(rng);
  let s = '';
  const length = int(rng, 10);
  for (let i = 0; i < length; i++) s += String.fromCharCode(int(rng, 0x10000));
  return s;
}

export const INTERESTING_NUMBERS = [
  0, -0, 1, -1, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
  2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 31), -(2 ** 53), 0.5, 1.5, -1.5, 1e-300, 1e300,
  Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE,
];

export function randomNumber(rng: Rng): number {
  switch (int(rng, 4)) {
    case 0: return int(rng, 300);
    case 1: return int(rng, 2 ** 53);
    case 2: return (rng() - 0.5) * 10 ** int(rng, 20);
    default: return pick(rng, INTERESTING_NUMBERS);
  }
}

export const FIELD_NAMES = [
  't', 'v', 'role', 'id', 'token', 'peers', 'all', 'envs', 'env', 'rev', 'prev', 'time', 'author', 'op',
  'changes', 'drop', 'entries', 'code', 'msg', 'n', 'req', 'res', 'key', 'value', 'prefix', 'path',
  'replace', 'limit', 'before', 'from', 'to', '__proto__', 'constructor', 'toString', 'length', '',
];

export function randomKey(rng: Rng): string {
  return chance(rng, 0.7) ? pick(rng, FIELD_NAMES) : randomAnyString(rng);
}

/**
 * A random JS value. With `exact`, only values that msgpack carries unchanged
 * (no lone surrogates, no -0), so a round trip must give them back.
 */
export function randomValue(rng: Rng, depth = 0, exact = false): unknown {
  const leafOnly = depth >= 6;
  switch (int(rng, leafOnly ? 6 : 9)) {
    case 0: return null;
    case 1: return chance(rng, 0.5);
    case 2:
    case 3: {
      const n = randomNumber(rng);
      return exact && Object.is(n, -0) ? 0 : n;
    }
    case 4: return exact ? randomText(rng) : randomAnyString(rng);
    case 5: return chance(rng, 0.5) ? randomText(rng) : pick(rng, FIELD_NAMES);
    case 6: return Array.from({ length: int(rng, 5) }, () => randomValue(rng, depth + 1, exact));
    case 7: {
      const o: Record<string, unknown> = {};
      const n = int(rng, 6);
      for (let i = 0; i < n; i++) Object.defineProperty(o, exact ? randomText(rng) : randomKey(rng), { value: randomValue(rng, depth + 1, exact), enumerable: true, configurable: true, writable: true });
      return o;
    }
    default: return chance(rng, 0.5) ? randomBytes(rng, int(rng, 8)) : [randomText(rng), chance(rng, 0.5) ? null : randomText(rng)];
  }
}

export const uint = (rng: Rng): number => (chance(rng, 0.8) ? int(rng, 1000) : int(rng, 2 ** 53));
export const json = (rng: Rng): string => JSON.stringify(randomValue(rng, 4) ?? null) ?? 'null';
export const ROLES = ['server', 'agent', 'admin', 'peer'] as const;
export const OPS: AdminOp[] = [
  'env.add', 'env.del', 'env.list', 'env.layers', 'env.show', 'set', 'get', 'del', 'list', 'merge', 'clear', 'unset', 'apply', 'plan',
  'history', 'diff', 'rollback', 'status', 'status.local',
  'user.add', 'user.del', 'user.list', 'user.passwd', 'token.add', 'token.del', 'token.list', 'audit', 'watch', 'unwatch',
  'schema.set', 'schema.get', 'schema.del', 'schema.list', 'schema.history', 'schema.rollback',
];

const verifier = (rng: Rng) => ({ salt: randomText(rng), iterations: uint(rng), storedKey: randomText(rng), serverKey: randomText(rng) });

export function randomRequest(rng: Rng): AdminRequest {
  // A client never names the servers' own environments (RESERVED_ENV_PREFIX): the decoder refuses them.
  const env = randomText(rng).replace(/^@/, 'x');
  const key = randomText(rng);
  const op = pick(rng, OPS);
  switch (op) {
    case 'env.add':
    case 'env.del': return { op, env };
    case 'env.list': return { op };
    case 'env.layers': return { op, env, parents: Array.from({ length: int(rng, 4) }, () => randomText(rng)) };
    case 'env.show': return { op, env };
    case 'set':
    case 'merge': return { op, env, key, value: json(rng) };
    case 'get': return chance(rng, 0.5) ? { op, env, key } : { op, env, key, own: chance(rng, 0.5), explain: chance(rng, 0.5) };
    case 'del': return { op, env, key };
    case 'list': return chance(rng, 0.5) ? { op, env } : { op, env, prefix: randomText(rng), own: chance(rng, 0.5) };
    case 'clear':
    case 'unset': return { op, env, key, path: Array.from({ length: int(rng, 4) }, () => randomText(rng)) };
    case 'apply':
    case 'plan': return { op, env, entries: Array.from({ length: int(rng, 4) }, (): [string, string] => [randomText(rng), json(rng)]), replace: chance(rng, 0.5) };
    case 'history': {
      const r: AdminRequest = { op, env };
      if (chance(rng, 0.5)) r.key = key;
      if (chance(rng, 0.5)) r.limit = uint(rng);
      if (chance(rng, 0.5)) r.before = uint(rng);
      if (chance(rng, 0.3)) r.own = true;
      return r;
    }
    case 'diff': return chance(rng, 0.5) ? { op, env, from: uint(rng) } : { op, env, from: uint(rng), to: uint(rng) };
    case 'rollback': return { op, env, rev: uint(rng) };
    case 'status': case 'status.local': return chance(rng, 0.5) ? { op } : { op, env };
    case 'user.add': return { op, name: randomText(rng), role: pick(rng, ['viewer', 'editor', 'admin', randomText(rng)]), envs: [randomText(rng)], verifier: verifier(rng) };
    case 'user.del':
    case 'token.del': return { op, name: randomText(rng) };
    case 'user.list':
    case 'token.list': return { op };
    case 'user.passwd': return chance(rng, 0.5) ? { op, verifier: verifier(rng) } : { op, name: randomText(rng), verifier: verifier(rng) };
    case 'token.add': return { op, name: randomText(rng), envs: [randomText(rng)], id: randomText(rng), verifier: verifier(rng) };
    case 'audit': return chance(rng, 0.5) ? { op } : { op, env, user: randomText(rng), since: uint(rng), limit: uint(rng) };
    case 'watch':
    case 'unwatch': return { op, env };
    case 'schema.set': {
      const r: AdminRequest = { op, envPattern: randomText(rng), keyPattern: randomText(rng), schema: json(rng) };
      if (chance(rng, 0.5)) r.mode = pick(rng, ['enforce', 'warn'] as const);
      if (chance(rng, 0.5)) r.whole = chance(rng, 0.5);
      return r;
    }
    case 'schema.get': return chance(rng, 0.5) ? { op, envPattern: randomText(rng), keyPattern: randomText(rng) } : { op, envPattern: randomText(rng), keyPattern: randomText(rng), whole: true, version: uint(rng) };
    case 'schema.del':
    case 'schema.history': return chance(rng, 0.5) ? { op, envPattern: randomText(rng), keyPattern: randomText(rng) } : { op, envPattern: randomText(rng), keyPattern: randomText(rng), whole: chance(rng, 0.5) };
    case 'schema.list': return chance(rng, 0.5) ? { op } : { op, env };
    case 'schema.rollback': return { op, envPattern: randomText(rng), keyPattern: randomText(rng), version: uint(rng) };
  }
}

/** A valid message of a random type (only well-formed strings, only safe non-negative integers). */
export function randomMessage(rng: Rng): Message {
  // An agent never follows the servers' own environments (RESERVED_ENV_PREFIX): the decoder refuses them.
  const envs = () => Array.from({ length: int(rng, 4) }, () => ({ env: randomText(rng).replace(/^@/, 'x'), rev: uint(rng) }));
  switch (int(rng, 16) + 1) {
    case 1: {
      const m: Message = { t: 1, v: int(rng, 4), role: pick(rng, ROLES), id: randomText(rng) };
      if (chance(rng, 0.5)) m.user = randomText(rng);
      if (chance(rng, 0.5)) m.nonce = randomText(rng, 40);
      if (chance(rng, 0.3)) m.peers = Array.from({ length: int(rng, 4) }, () => randomText(rng));
      return m;
    }
    case 2: return { t: 2, all: chance(rng, 0.5), envs: envs() };
    case 3: return { t: 3, env: randomText(rng), rev: uint(rng), entries: Array.from({ length: int(rng, 5) }, (): [string, string] => [randomText(rng), json(rng)]) };
    case 4: {
      const m: Message = {
        t: 4, env: randomText(rng), rev: uint(rng), prev: uint(rng), time: int(rng, 2 ** 42), author: randomText(rng), op: pick(rng, OPS),
        changes: Array.from({ length: int(rng, 5) }, (): [string, string | null] => [randomText(rng), chance(rng, 0.3) ? null : json(rng)]),
      };
      if (chance(rng, 0.2)) m.drop = chance(rng, 0.5);
      return m;
    }
    case 5: return { t: 5, env: randomText(rng), rev: uint(rng) };
    case 6: return chance(rng, 0.5)
      ? { t: 6, code: pick(rng, Object.values(WireError)), msg: randomText(rng) }
      : { t: 6, code: uint(rng), msg: randomText(rng), id: uint(rng) };
    case 7: return { t: 7, n: uint(rng) };
    case 8: return { t: 8, n: uint(rng) };
    case 9: return { t: 9, id: uint(rng), req: randomRequest(rng) };
    case 10: return { t: 10, id: uint(rng), res: randomValue(rng, 2, true) };
    case 11: return { t: 11, nonce: randomText(rng, 40), salt: randomText(rng), iterations: uint(rng) };
    case 12: return { t: 12, proof: randomText(rng, 60) };
    case 13: return { t: 13, signature: randomText(rng, 60), account: randomText(rng), role: randomText(rng), envs: [randomText(rng)] };
    case 14: return {
      t: 14,
      members: Array.from({ length: int(rng, 3) }, () => ({
        id: randomText(rng), gen: uint(rng), ver: uint(rng), addrs: [randomText(rng)], peer: randomText(rng),
        state: pick(rng, ['alive', 'draining', 'left'] as const), agents: uint(rng), head: uint(rng),
      })),
      envs: Array.from({ length: int(rng, 3) }, (): [string, number] => [randomText(rng), uint(rng)]),
    };
    case 15: return { t: 15, servers: Array.from({ length: int(rng, 3) }, () => ({ addr: randomText(rng), agents: uint(rng), state: randomText(rng) })) };
    default: return chance(rng, 0.5) ? { t: 16, within: uint(rng), reason: randomText(rng) } : { t: 16, to: randomText(rng), within: uint(rng), reason: randomText(rng) };
  }
}

/** A valid message with one field (top level or inside `req`) replaced, removed or added. */
export function mutateMessage(rng: Rng, message: Message): Record<string, unknown> {
  const m = structuredClone(message) as unknown as Record<string, unknown>;
  const target = m['req'] !== undefined && chance(rng, 0.5) ? (m['req'] as Record<string, unknown>) : m;
  const keys = Object.keys(target);
  switch (int(rng, 3)) {
    case 0: target[pick(rng, keys)] = randomValue(rng, 3); break;
    case 1: delete target[pick(rng, keys)]; break;
    default: target[randomKey(rng)] = randomValue(rng, 3);
  }
  return m;
}

/** Bytes built from msgpack tokens that tend to reach unusual decoder paths. */
export const TOKENS = [
  '90', '91', '92', '9f', '80', '81', '8f', 'a0', 'a1 74', 'a3 656e76', 'c0', 'c1', 'c2', 'c3',
  'c4 00', 'c4 03 010203', 'c5 0001 00', 'c6 ffffffff', 'c7 01 00 00', 'c7 ff 69', 'c8 0001 65 00', 'c9 ffffffff 74',
  'ca 7fc00000', 'cb 7ff0000000000000', 'cb 8000000000000000', 'cc ff', 'cd ffff', 'ce ffffffff', 'cf ffffffffffffffff',
  'd0 80', 'd1 8000', 'd2 80000000', 'd3 8000000000000000', 'd4 00 00', 'd4 72 40', 'd4 62 00', 'd4 65 00', 'd4 69 00', 'd4 70 00',
  'd4 73 00', 'd4 74 00', 'd4 78 00', 'd4 ff 00', 'd5 72 40 00', 'd5 42 ffff', 'd6 ff 00000000', 'd6 69 00000001', 'd6 70 00000001',
  'd7 ff 0000000000000000', 'd8 42 00000000000000000000000000000001', 'd9 00', 'd9 ff', 'da ffff', 'db ffffffff',
  'dc ffff', 'dd ffffffff', 'de ffff', 'df ffffffff', 'ff', 'e0', '7f', '40', '5f', '60',
];

export function tokenSoup(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  const n = 1 + int(rng, 12);
  for (let i = 0; i < n; i++) {
    parts.push(chance(rng, 0.85) ? Buffer.from(pick(rng, TOKENS).replace(/\s+/g, ''), 'hex') : randomBytes(rng, 1 + int(rng, 4)));
  }
  return Buffer.concat(parts);
}


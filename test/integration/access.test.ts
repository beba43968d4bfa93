/**
 * Accounts, roles, agent tokens and the audit, against a server in this
 * process over in-memory connections with real logins: every role against
 * every operation, failed and replayed logins, tokens that do not grant,
 * revocation, the throttle, and what the audit and history record.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessageType, PROTOCOL_VERSION, WireError, wireErrorName,
  type AdminOp, type AdminRequest, type Challenge, type ErrorMessage, type Message, type Release, type Response, type Welcome,
} from '../../src/protocol/index.js';
import { OPERATIONS } from '../../src/server/ops/table.js';
import { makeVerifier } from '../../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../../src/security/token.js';
import { ScramClient } from '../support/login.js';
import type { TestPeer } from '../support/memory.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { ADMIN_PASSWORD, waitFor } from '../support/common.js';

const isError = (m: Message): m is ErrorMessage => m.t === MessageType.Error;
const isChallenge = (m: Message): m is Challenge => m.t === MessageType.Challenge;
const isWelcome = (m: Message): m is Welcome => m.t === MessageType.Welcome;

let mem: MemoryServer;
let next = 1;
before(async () => {
  mem = await memoryServer();
  for (const env of ['shop', 'prod', 'team/a']) await mem.server.hub.execute({ op: 'env.add', env }, 'test');
  await mem.account('vic', 'viewer', ['shop']);
  await mem.account('ed', 'editor', ['shop', 'team/*']);
});
after(() => mem.close());
/** Sessions a test opened, closed after it (a server takes 64 admin sessions at most). */
const opened: TestPeer[] = [];
afterEach(() => {
  for (const peer of opened.splice(0)) peer.socket.destroy();
});

async function logIn(scram: ScramClient, addr?: string): Promise<{ peer: TestPeer; welcome: Welcome }> {
  const peer = mem.connect(addr);
  opened.push(peer);
  await peer.next((m): m is Message => m.t === MessageType.Hello);
  peer.send(scram.hello());
  peer.send(scram.proof(await peer.next(isChallenge)));
  const welcome = await peer.next(isWelcome);
  assert.ok(scram.verify(welcome));
  return { peer, welcome };
}

/** Sends `req` and resolves with the Response's result or the Error's code. */
async function ask(peer: TestPeer, req: AdminRequest): Promise<{ ok: true; res: unknown } | { ok: false; code: number; msg: string }> {
  const id = next++;
  const from = peer.received.length;
  peer.send({ t: MessageType.Request, id, req });
  const answer = await peer.next((m): m is Response | ErrorMessage => (m.t === MessageType.Response || m.t === MessageType.Error) && m.id === id, from);
  return answer.t === MessageType.Response ? { ok: true, res: answer.res } : { ok: false, code: answer.code, msg: answer.msg };
}

const verifier = () => makeVerifier('a-new-password', 4096);

/** A request for `op` that each role may try without harming the others' cases (throwaway names). */
async function sample(op: AdminOp, env: string, i: number): Promise<AdminRequest> {
  const throwaway = `x${i}`;
  switch (op) {
    case 'env.add': return { op, env: `new-${i}` };
    case 'env.del': {
      await mem.server.hub.execute({ op: 'env.add', env: `gone-${i}` }, 'test');
      return { op, env: `gone-${i}` };
    }
    case 'env.list': return { op };
    case 'env.layers': return { op, env, parents: [] };
    case 'env.show': return { op, env };
    case 'set': case 'merge': return { op, env, key: 'k', value: '{"a":1}' };
    case 'get': case 'del': return { op, env, key: 'k' };
    case 'list': return { op, env };
    case 'clear': case 'unset': return { op, env, key: 'k', path: ['a'] };
    case 'apply': case 'plan': return { op, env, entries: [['k2', '2']], replace: false };
    case 'history': return { op, env };
    case 'diff': return { op, env, from: 0 };
    case 'rollback': return { op, env, rev: 0 };
    case 'status': case 'status.local': return { op };
    case 'watch': case 'unwatch': return { op, env };
    case 'user.add': return { op, name: throwaway, role: 'viewer', envs: [], verifier: verifier() };
    case 'user.del': {
      await mem.account(throwaway, 'viewer');
      return { op, name: throwaway };
    }
    case 'user.list': case 'token.list': return { op };
    case 'user.passwd': return { op, verifier: verifier() };
    case 'token.add': {
      const t = newToken();
      return { op, name: throwaway, envs: ['shop'], id: t.id, verifier: makeVerifier(t.secret, TOKEN_ITERATIONS) };
    }
    case 'token.del': {
      await mem.token(throwaway, ['shop']);
      return { op, name: throwaway };
    }
    case 'audit': return { op, limit: 5 };
    case 'schema.set': return { op, envPattern: `throwaway-${i}`, keyPattern: 'k', schema: '{"type":"object"}' };
    case 'schema.get': case 'schema.history': {
      await mem.server.hub.execute({ op: 'schema.set', envPattern: `kept-${i}`, keyPattern: 'k', schema: '{}' }, 'test');
      return { op, envPattern: `kept-${i}`, keyPattern: 'k' };
    }
    case 'schema.del': case 'schema.rollback': {
      await mem.server.hub.execute({ op: 'schema.set', envPattern: `kept-${i}`, keyPattern: 'k', schema: '{}' }, 'test');
      return op === 'schema.del' ? { op, envPattern: `kept-${i}`, keyPattern: 'k' } : { op, envPattern: `kept-${i}`, keyPattern: 'k', version: 1 };
    }
    case 'schema.list': return { op, env };
  }
}

describe('every role against every operation', () => {
  const roles = { viewer: 'vic', editor: 'ed', admin: 'admin' } as const;
  const passwords: Record<string, string> = { vic: 'vic-password', ed: 'ed-password', admin: ADMIN_PASSWORD };
  for (const [role, name] of Object.entries(roles)) {
    for (const op of Object.keys(OPERATIONS) as AdminOp[]) {
      for (const env of ['shop', 'prod']) {
        const need = OPERATIONS[op].permission;
        // Both are granted shop: a viewer reads it, an editor changes and reads it; only an admin reads prod.
        const readable = role === 'admin' || env === 'shop' || (['env.list', 'status', 'status.local', 'schema.get', 'schema.history'] as AdminOp[]).includes(op);
        const allowed = (need === 'read' && readable) || need === 'self' || role === 'admin' || (need === 'write' && role === 'editor' && env === 'shop');
        test(`${role} ${op}${need === 'write' || need === 'read' ? ` in ${env}` : ''}: ${allowed ? 'allowed' : 'FORBIDDEN'}`, async () => {
          const { peer } = await logIn(new ScramClient('admin', name, passwords[name]));
          const answer = await ask(peer, await sample(op, env, next++));
          if (allowed) assert.ok(answer.ok || answer.code !== WireError.FORBIDDEN, `refused: ${JSON.stringify(answer)}`);
          else assert.deepEqual(answer.ok ? 'allowed' : answer.code, WireError.FORBIDDEN, JSON.stringify(answer));
          if (op === 'user.passwd' && answer.ok) {
            // Restore the password the next cases log in with.
            await mem.server.access.execute({ op: 'user.passwd', name, verifier: makeVerifier(passwords[name], 4096) }, { account: 'admin', addr: 'test' });
          }
        });
      }
    }
  }

  test('an editor granted team/* may change team/a; changing another account\'s password needs admin', async () => {
    const { peer } = await logIn(new ScramClient('admin', 'ed', 'ed-password'));
    assert.equal((await ask(peer, { op: 'set', env: 'team/a', key: 'k', value: '1' })).ok, true);
    const other = await ask(peer, { op: 'user.passwd', name: 'vic', verifier: verifier() });
    assert.deepEqual(other.ok ? 'allowed' : other.code, WireError.FORBIDDEN);
  });

  test('history records the account that logged in, whatever id the client sent', async () => {
    const { peer } = await logIn(new ScramClient('admin', 'ed', 'ed-password'));
    const set = await ask(peer, { op: 'set', env: 'shop', key: 'who', value: '"me"' });
    assert.ok(set.ok);
    const history = await mem.server.hub.execute({ op: 'history', env: 'shop', key: 'who', limit: 1 }, 'test');
    assert.equal(history.releases[0].author, 'ed');
  });
});

describe('logins that fail', () => {
  test('a wrong password and an unknown name fail alike, each in the audit; neither shows whether the name exists', async () => {
    const results: ErrorMessage[] = [];
    const salts: string[] = [];
    for (const [user, password] of [['admin', 'wrong'], ['nobody', 'whatever'], ['nobody', 'again']] as const) {
      const scram = new ScramClient('admin', user, password);
      const peer = mem.connect('10.0.0.9:1');
      await peer.next((m): m is Message => m.t === MessageType.Hello);
      peer.send(scram.hello());
      const challenge = await peer.next(isChallenge);
      salts.push(`${user} ${challenge.salt} ${challenge.iterations}`);
      peer.send(scram.proof(challenge));
      results.push(await peer.next(isError));
      await peer.whenClosed();
    }
    assert.deepEqual(results.map((e) => [e.code, e.msg]), Array(3).fill([WireError.AUTH_FAILED, 'login failed: unknown name or wrong secret']));
    assert.equal(salts[1], salts[2], 'an unknown name gets the same salt every time, as a real one does');
    assert.equal(salts[1].split(' ')[2], '4096', 'and the iterations of a real account');
    await waitFor('audited', async () => {
      const entries = (await mem.server.access.execute({ op: 'audit', limit: 50 }, { account: 'admin', addr: 'test' }) as { entries: { actor: string; action: string; result: string; addr: string }[] }).entries;
      return entries.filter((e) => e.action === 'login' && e.result === 'failed' && e.addr === '10.0.0.9:1').length === 3;
    });
  });

  test('a replayed login exchange is refused: the server\'s nonce is new each time', async () => {
    const scram = new ScramClient('admin', 'admin', ADMIN_PASSWORD);
    const first = mem.connect();
    await first.next((m): m is Message => m.t === MessageType.Hello);
    const hello = scram.hello();
    first.send(hello);
    const proof = scram.proof(await first.next(isChallenge));
    first.send(proof);
    await first.next(isWelcome);
    // Someone who captured both frames sends them again.
    const replay = mem.connect('10.0.0.66:1');
    await replay.next((m): m is Message => m.t === MessageType.Hello);
    replay.send(hello);
    await replay.next(isChallenge);
    replay.send(proof);
    assert.equal((await replay.next(isError)).code, WireError.AUTH_FAILED);
  });

  test('failures of a name from one address make its next attempt wait there, told at once; the right password still gets in from elsewhere', async () => {
    const attempt = async (): Promise<ErrorMessage> => {
      const scram = new ScramClient('admin', 'vic', 'not-it');
      const peer = mem.connect('10.0.0.77:1');
      await peer.next((m): m is Message => m.t === MessageType.Hello);
      peer.send(scram.hello());
      peer.send(scram.proof(await peer.next(isChallenge)));
      const error = await peer.next(isError);
      await peer.whenClosed();
      return error;
    };
    for (let i = 0; i < 5; i++) assert.equal((await attempt()).code, WireError.AUTH_FAILED);
    const told = await attempt();
    assert.equal(told.code, WireError.THROTTLED, 'the sixth is not checked');
    assert.ok(told.retry !== undefined && told.retry > 0, 'and says how long to wait');
    const { welcome } = await logIn(new ScramClient('admin', 'vic', 'vic-password'), '10.0.0.78:1');
    assert.equal(welcome.account, 'vic', 'the right password gets in from another address');
  });

  test('an agent without a token, with a revoked one, or following what its token does not grant is refused with one clear error', async () => {
    const none = mem.connect();
    await none.next((m): m is Message => m.t === MessageType.Hello);
    none.send({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: 'agent', id: 'h' });
    assert.match((await none.next(isError)).msg, /needs a user \(account name or token id\)/);

    const shopOnly = await mem.token('shop-only', ['shop']);
    const { peer } = await logIn(ScramClient.agent(shopOnly));
    peer.send({ t: MessageType.Subscribe, all: false, envs: [{ env: 'prod', rev: 0 }] });
    const refused = await peer.next(isError);
    assert.equal(refused.code, WireError.FORBIDDEN);
    assert.match(refused.msg, /does not grant "prod"/);

    const revoked = await mem.token('soon-gone', ['shop']);
    await mem.server.access.execute({ op: 'token.del', name: 'soon-gone' }, { account: 'admin', addr: 'test' });
    const late = mem.connect();
    await late.next((m): m is Message => m.t === MessageType.Hello);
    const scram = ScramClient.agent(revoked);
    late.send(scram.hello());
    late.send(scram.proof(await late.next(isChallenge)));
    assert.equal((await late.next(isError)).code, WireError.AUTH_FAILED);
  });
});

describe('agent tokens', () => {
  test('following every environment means every one the token grants, including those created later', async () => {
    const t = await mem.token('team-only', ['team/*']);
    const { peer } = await logIn(ScramClient.agent(t));
    peer.send({ t: MessageType.Subscribe, all: true, envs: [] });
    await mem.server.hub.execute({ op: 'env.add', env: 'team/b' }, 'test');
    await mem.server.hub.execute({ op: 'set', env: 'shop', key: 'secret-of-shop', value: '1' }, 'test');
    await mem.server.hub.execute({ op: 'set', env: 'team/b', key: 'k', value: '1' }, 'test');
    await waitFor('the team/b release', () => peer.received.some((m) => m.t === MessageType.Release && m.env === 'team/b' && m.changes.length > 0));
    const envs = new Set(peer.received.filter((m): m is Release => m.t === MessageType.Release || m.t === MessageType.Snapshot).map((m) => m.env));
    assert.deepEqual([...envs].sort(), ['team/a', 'team/b']);
  });

  test('a revoked token\'s connected agents are disconnected at once', async () => {
    const t = await mem.token('revoke-me', ['shop']);
    const agents = await Promise.all([1, 2, 3].map(() => logIn(ScramClient.agent(t))));
    for (const { peer } of agents) peer.send({ t: MessageType.Subscribe, all: false, envs: [{ env: 'shop', rev: 0 }] });
    await mem.server.access.execute({ op: 'token.del', name: 'revoke-me' }, { account: 'admin', addr: 'test' });
    // Ended by the revocation itself (not by a ping or a sweep): the server says so.
    for (const { peer } of agents) {
      await peer.whenClosed(30_000);
      const errors = peer.received.filter(isError);
      assert.deepEqual(errors.map((e) => [e.code, e.msg]), [[WireError.AUTH_FAILED, 'the token revoke-me was revoked']]);
    }
  });

  test('a deleted account\'s sessions end', async () => {
    await mem.account('temp', 'viewer');
    const { peer } = await logIn(new ScramClient('admin', 'temp', 'temp-password'));
    await mem.server.access.execute({ op: 'user.del', name: 'temp' }, { account: 'admin', addr: 'test' });
    await peer.whenClosed(30_000);
    const errors = peer.received.filter(isError);
    assert.deepEqual(errors.map((e) => [e.code, e.msg]), [[WireError.AUTH_FAILED, 'the account temp was deleted']]);
  });

  test('a request is checked against the identity its session logged in as, not the name', async () => {
    await assert.rejects(
      mem.server.access.execute({ op: 'env.list' }, { account: 'vic', uid: 'an-earlier-vic', addr: 'test' }),
      (err: Error & { status?: number }) => err.status === WireError.FORBIDDEN && /vic this session logged in as no longer exists/.test(err.message),
    );
  });
});

describe('the audit', () => {
  test('records who, when, from where, what and the result, refusals included, and never a secret', async () => {
    const { peer } = await logIn(new ScramClient('admin', 'ed', 'ed-password'), '10.1.1.1:99');
    await ask(peer, { op: 'set', env: 'shop', key: 'db/password', value: '"hunter2-not-audited"' });
    await ask(peer, { op: 'set', env: 'prod', key: 'x', value: '1' });
    const t = newToken();
    const admin = (await logIn(new ScramClient('admin', 'admin', ADMIN_PASSWORD))).peer;
    await ask(admin, { op: 'token.add', name: 'audited', envs: ['shop'], id: t.id, verifier: makeVerifier(t.secret, TOKEN_ITERATIONS) });
    const got = await ask(admin, { op: 'audit', user: 'ed', limit: 10 });
    assert.ok(got.ok);
    const entries = (got.res as { entries: { actor: string; addr: string; action: string; env: string; result: string; code: string; detail: string; time: number }[] }).entries;
    const set = entries.find((e) => e.action === 'set' && e.env === 'shop')!;
    assert.deepEqual({ ...set, time: 0 }, { ...set, actor: 'ed', addr: '10.1.1.1:99', result: 'ok', code: '', detail: 'key db/password', time: 0 });
    const refused = entries.find((e) => e.action === 'set' && e.env === 'prod')!;
    assert.equal(refused.result, 'refused');
    assert.equal(refused.code, 'FORBIDDEN');
    const everything = JSON.stringify(await ask(admin, { op: 'audit', limit: 10_000 }));
    for (const secret of ['hunter2-not-audited', t.secret, ADMIN_PASSWORD, 'ed-password']) assert.ok(!everything.includes(secret), `${secret} in the audit`);
    assert.ok(everything.includes('token audited id'), 'the token is named, not shown');
  });

  test('every refusal of an account\'s request is audited, whatever the reason: a malformed request id, a request that cannot be read', async () => {
    const { peer } = await logIn(new ScramClient('admin', 'vic', 'vic-password'), '10.1.1.2:7');
    const id = next++;
    peer.send({ t: MessageType.Request, id, req: { op: 'env.del', env: 'shop' }, rid: 'not a valid id' });
    const refused = await peer.next((m): m is ErrorMessage => isError(m) && m.id === id);
    assert.equal(refused.code, WireError.BAD_REQUEST);
    // A request the server cannot read ends the session: that is audited too.
    const from = peer.received.length;
    peer.send({ t: MessageType.Request, id: next++, req: { op: 'get', env: 'shop' } as AdminRequest });
    const ended = await peer.next(isError, from);
    await peer.whenClosed();
    const admin = (await logIn(new ScramClient('admin', 'admin', ADMIN_PASSWORD))).peer;
    const rows = await waitFor('both audited', async () => {
      const got = await ask(admin, { op: 'audit', user: 'vic', limit: 100 });
      assert.ok(got.ok);
      const entries = (got.res as { entries: { addr: string; action: string; env: string; result: string; code: string; detail: string }[] }).entries.filter((e) => e.addr === '10.1.1.2:7' && e.action !== 'login');
      return entries.length >= 2 ? entries : undefined;
    });
    assert.deepEqual(rows.map((e) => [e.action, e.env, e.result, e.code]), [
      ['session', '', 'refused', wireErrorName(ended.code)],
      ['env.del', 'shop', 'refused', 'BAD_REQUEST'],
    ]);
    assert.match(rows[1].detail, /a request id is 1 to 128/);
    assert.ok(!rows[1].detail.includes('not a valid id'), 'the id itself is not recorded');
  });
});

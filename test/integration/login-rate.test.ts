/**
 * Failed logins are held to the documented rate on a server with workers,
 * whichever worker takes each connection: a parallel burst of guesses at one
 * name, and guesses at many names with a valid login between each two, from
 * one address (the attacker binds 127.0.0.2 and 127.0.0.3; the tests' own
 * admin commands come from 127.0.0.1). Rates are shown by counts over the
 * window the test measures, against burst + window / interval.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WireError } from '../../src/protocol/index.js';
import { AdminClient } from '../../src/admin/client.js';
import { LIMIT_DEFAULTS } from '../../src/server/limits.js';
import { ScramClient } from '../support/login.js';
import { ADMIN_PASSWORD, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';
import { RawClient } from '../support/raw-agents.js';

const procs = new Procs();
const dir = tempDir('vitefa-login-rate-');
let address = '';
let target = { host: '127.0.0.1', port: 0 };

before(async () => {
  const server = await startServer(path.join(dir, 'store'), ['--workers', '3', '--max-agents', '300']);
  procs.track(server.proc);
  address = server.address;
  target = { host: '127.0.0.1', port: Number(address.split(':')[1]) };
  for (const [name, password] of [['vic', 'vic-password'], ['mallory', 'mallory-password']] as const) {
    const made = await run(['admin', '--server', address, 'user', 'add', name, 'viewer'], { env: { VITEFA_NEW_PASSWORD: password } });
    assert.equal(made.code, 0, made.stderr);
  }
});
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Outcome = 'welcome' | 'failed' | 'throttled' | 'other';

/** One login over TCP from `localAddress`: how the server answered it. */
async function login(scram: ScramClient, localAddress: string): Promise<{ outcome: Outcome; retry?: number }> {
  const client = new RawClient(target, localAddress);
  try {
    if (!(await client.greeted(30_000))) return { outcome: 'other' };
    client.login(scram);
    await waitFor('an answer to the login', () => client.loggedIn || client.errors.length > 0 || client.closed, 60_000, 5);
    if (client.loggedIn) return { outcome: 'welcome' };
    const error = client.errors[0];
    if (error?.code === WireError.AUTH_FAILED) return { outcome: 'failed' };
    if (error?.code === WireError.THROTTLED) return { outcome: 'throttled', ...(error.retry === undefined ? {} : { retry: error.retry }) };
    return { outcome: 'other' };
  } finally {
    client.close();
  }
}

async function audited(actor: string, from: string): Promise<number> {
  const admin = await AdminClient.connect({ ...target, login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
  try {
    const { entries } = await admin.request({ op: 'audit', user: actor, limit: 10_000 });
    return entries.filter((e) => e.result === 'failed' && e.addr.replace(/^::ffff:/, '').startsWith(`${from}:`)).length;
  } finally {
    admin.close();
  }
}

test('a parallel burst of guesses at one name from one address gets only the pair\'s burst checked, the rest told at once', async (t) => {
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 60 }, () => login(new ScramClient('admin', 'vic', 'a-guess'), '127.0.0.2')));
  const windowMs = Date.now() - started;
  const failed = answers.filter((a) => a.outcome === 'failed').length;
  const bound = LIMIT_DEFAULTS.loginPairBurst + Math.ceil(windowMs / LIMIT_DEFAULTS.loginPairIntervalMs);
  t.diagnostic(`${failed} of 60 parallel guesses checked in ${windowMs} ms (bound ${bound})`);
  assert.ok(failed >= 1 && failed <= bound, `${failed} guesses checked in ${windowMs} ms; at most ${bound} may be`);
  const throttled = answers.filter((a) => a.outcome === 'throttled');
  assert.equal(failed + throttled.length, answers.length, `every guess answered: ${JSON.stringify(answers.filter((a) => a.outcome !== 'failed' && a.outcome !== 'throttled'))}`);
  assert.ok(throttled.every((a) => a.retry !== undefined && a.retry > 0 && a.retry <= LIMIT_DEFAULTS.loginPairIntervalMs), 'each told how long to wait');
  // Each guess checked is audited, and no other.
  await waitFor('the checked guesses audited', async () => (await audited('vic', '127.0.0.2')) >= failed, 15_000, 200);
  assert.equal(await audited('vic', '127.0.0.2'), failed);
  // The owner, from another address, is not held back by any of it.
  const owner = await AdminClient.connect({ ...target, login: { user: 'vic', secret: 'vic-password' }, connectTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
  owner.close();
});

test('guesses at many names from one address, a valid login between each two, are held to the address\'s rate', async (t) => {
  const from = '127.0.0.3';
  const started = Date.now();
  let checked = 0;
  let valid = 0;
  for (let i = 0; Date.now() - started < 6_000 && i < 1_000; i++) {
    if ((await login(new ScramClient('admin', 'mallory', 'mallory-password'), from)).outcome === 'welcome') valid++;
    if ((await login(new ScramClient('admin', `someone-${i}`, 'a-guess'), from)).outcome === 'failed') checked++;
    await new Promise((r) => setTimeout(r, 5));
  }
  const windowMs = Date.now() - started;
  const bound = LIMIT_DEFAULTS.loginAddressBurst + Math.ceil(windowMs / LIMIT_DEFAULTS.loginAddressIntervalMs);
  t.diagnostic(`${checked} guesses checked and ${valid} valid logins in ${windowMs} ms (bound ${bound})`);
  assert.ok(valid >= 1, 'the valid logins went through while the address had room');
  assert.ok(checked <= bound, `${checked} guesses checked in ${windowMs} ms; at most ${bound} may be`);
  assert.ok(checked >= LIMIT_DEFAULTS.loginAddressBurst, `${checked} guesses checked: the address's burst is checked`);
});

/**
 * No secret in any output: a server and an agent with every trace on, and
 * admin commands that make accounts and tokens, change passwords, fail to
 * log in and revoke; then every line they printed, the audit trail and the
 * history are searched for every secret the run used. (The one place a
 * secret may appear is the output of `token add`, which shows the new token
 * once, on purpose.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseToken } from '../../src/security/token.js';
import { ADMIN_PASSWORD, Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-secrets-');
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('no password, token or mistyped password appears in logs, errors, history or the audit', async () => {
  const trace = { VITEFA_TRACE: '*' };
  const { proc: server, address } = await startServer(path.join(dir, 'server'), [], trace);
  procs.track(server);
  const outputs: string[] = [];
  const admin = async (args: string[], env: NodeJS.ProcessEnv = {}, keepStdout = true): Promise<string> => {
    const r = await run(['admin', '--server', address, ...args], { env: { ...trace, ...env } });
    outputs.push(r.stderr);
    if (keepStdout) outputs.push(r.stdout);
    return r.stdout;
  };
  const secrets = ['bob-first-password', 'bob-second-password', 'mistyped-password-try', ADMIN_PASSWORD];

  await admin(['env', 'add', 'shop']);
  await admin(['user', 'add', 'bob', 'editor', 'shop'], { VITEFA_NEW_PASSWORD: secrets[0] });
  const tokenOut = await admin(['token', 'add', 'shop-agent', 'shop'], {}, false);
  const token = tokenOut.split('\n').find((l) => l.startsWith('vta_'))!;
  // The secret part whole: it is base64url, so it may itself hold '_' (splitting on it could leave an empty piece).
  secrets.push(token, parseToken(token)!.secret);
  const agent = procs.track(new Proc(['agent', '--servers', address, '--store', path.join(dir, 'agent')], { env: { ...trace, VITEFA_AGENT_TOKEN: token } }));
  await agent.waitForOutput(/agent connected/);
  await admin(['set', 'shop', 'greeting', 'hi'], { VITEFA_USER: 'bob', VITEFA_PASSWORD: secrets[0] });
  await admin(['env', 'list'], { VITEFA_USER: 'bob', VITEFA_PASSWORD: secrets[2] });
  await admin(['env', 'list'], { VITEFA_USER: 'nobody', VITEFA_PASSWORD: secrets[2] });
  await admin(['passwd'], { VITEFA_USER: 'bob', VITEFA_PASSWORD: secrets[0], VITEFA_NEW_PASSWORD: secrets[1] });
  await admin(['set', 'shop', 'greeting', 'hello'], { VITEFA_USER: 'bob', VITEFA_PASSWORD: secrets[1] });
  await admin(['token', 'del', 'shop-agent']);
  await waitFor('the agent told of its revocation', () => /revoked/.test(agent.output));
  // An agent with a token one character off: refused, and it says so without the token.
  const wrong = procs.track(new Proc(['agent', '--servers', address, '--store', path.join(dir, 'agent2')], { env: { ...trace, VITEFA_AGENT_TOKEN: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` } }));
  await wrong.waitForOutput(/refused the agent's token/);
  await wrong.stop();
  outputs.push(wrong.output);
  outputs.push(await admin(['audit', '--json', '--limit', '1000']));
  outputs.push(await admin(['history', '--json', 'shop']));
  outputs.push(await admin(['user', 'list', '--json']));
  outputs.push(await admin(['token', 'list', '--json']));
  await agent.stop();
  outputs.push(server.output, agent.output);

  const everything = outputs.join('\n');
  assert.match(everything, /login failed: unknown name or wrong secret/, 'the failed logins did happen');
  assert.match(everything, /"action":"login","env":"","result":"failed"/, 'and were audited');
  for (const secret of secrets) assert.ok(!everything.includes(secret), `a secret appeared in the output: ${secret.slice(0, 6)}…`);
});

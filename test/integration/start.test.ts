/**
 * `vitefa start` (what `npm start` runs) on a fresh folder with
 * VITEFA_ADMIN_PASSWORD set: the server makes the account admin with that
 * password, and the login file the start writes holds the same one, so both
 * log in. Without the variable, the start chooses a password, writes it to
 * the login file, and that one logs in; the server's log says so. Started
 * again on the same folder, the variable is ignored (the account exists),
 * with one notice when it differs from the login file.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, Proc, run, tempDir } from '../support/procs.js';

const dir = tempDir('vitefa-start-');
const started: Proc[] = [];
after(async () => {
  // SIGTERM, not SIGKILL: the start stops its server and agent on the way out.
  await Promise.all(started.map((p) => p.stop('SIGTERM')));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function start(data: string, env: NodeJS.ProcessEnv): Promise<{ proc: Proc; address: string }> {
  const address = `127.0.0.1:${await freePort()}`;
  const proc = new Proc(['start', '--listen', address, '--data', data], { env });
  started.push(proc);
  await proc.waitForOutput(/vitefa is running/, 60_000);
  return { proc, address };
}

/** `vitefa admin env list` as `login` says: a password for admin, or a login file. */
function envList(address: string, login: { password: string } | { file: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return 'password' in login
    ? run(['admin', '--server', address, '--user', 'admin', 'env', 'list'], { env: { VITEFA_PASSWORD: login.password } })
    : run(['admin', '--server', address, '--login-file', login.file, 'env', 'list'], { env: { VITEFA_USER: '', VITEFA_PASSWORD: '' } });
}

test('npm start with VITEFA_ADMIN_PASSWORD: that password logs in, and so does the login file', async () => {
  const data = path.join(dir, 'given');
  const password = 'the-password-given-to-npm-start';
  const { proc, address } = await start(data, { VITEFA_ADMIN_PASSWORD: password });
  assert.match(proc.output, /created the account admin with the password from VITEFA_ADMIN_PASSWORD/);

  const loginFile = path.join(data, 'admin.login');
  assert.deepEqual(JSON.parse(fs.readFileSync(loginFile, 'utf8')), { user: 'admin', password });
  assert.equal(fs.statSync(loginFile).mode & 0o077, 0, 'the login file is readable by its owner only');

  const byPassword = await envList(address, { password });
  assert.equal(byPassword.code, 0, byPassword.stderr);
  assert.match(byPassword.stdout, /demo/);
  const byFile = await envList(address, { file: loginFile });
  assert.equal(byFile.code, 0, byFile.stderr);
  assert.match(byFile.stdout, /demo/);
  const wrong = await envList(address, { password: 'not-the-password' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /login failed/);

  assert.equal(await proc.stop('SIGTERM'), 0);
  // Again with the same variable: it agrees with the login file, nothing to say.
  const again = await start(data, { VITEFA_ADMIN_PASSWORD: password });
  assert.doesNotMatch(again.proc.output, /is ignored|created the account/);
  assert.equal(await again.proc.stop('SIGTERM'), 0);
});

test('npm start without VITEFA_ADMIN_PASSWORD chooses a password and the login file holds it', async () => {
  const data = path.join(dir, 'chosen');
  const { proc, address } = await start(data, { VITEFA_ADMIN_PASSWORD: '' });
  const loginFile = path.join(data, 'admin.login');
  const { user, password } = JSON.parse(fs.readFileSync(loginFile, 'utf8')) as { user: string; password: string };
  assert.equal(user, 'admin');
  assert.ok(password.length >= 16, 'a chosen password, not an empty one');

  const byFile = await envList(address, { file: loginFile });
  assert.equal(byFile.code, 0, byFile.stderr);
  assert.match(byFile.stdout, /demo/);
  const byPassword = await envList(address, { password });
  assert.equal(byPassword.code, 0, byPassword.stderr);
  // The server was handed the password in VITEFA_ADMIN_PASSWORD, but its log says where it really came from.
  const created = proc.output.split('\n').filter((l) => l.includes('created the account admin'));
  assert.equal(created.length, 1, proc.output);
  assert.match(created[0], /created the account admin with the password vitefa start chose and wrote to .*admin\.login$/);

  assert.equal(await proc.stop('SIGTERM'), 0);
  // Started again with another password in the variable: one notice that it is ignored, and the login file still logs in.
  const other = await start(data, { VITEFA_ADMIN_PASSWORD: 'another-password-than-the-file' });
  const notices = other.proc.output.split('\n').filter((l) => l.includes('VITEFA_ADMIN_PASSWORD'));
  assert.equal(notices.length, 1, other.proc.output);
  assert.match(notices[0], /^vitefa start: VITEFA_ADMIN_PASSWORD is ignored: the account admin already exists in .* \(its password is the one in .*admin\.login\); change its password with: vitefa admin passwd$/);
  assert.doesNotMatch(other.proc.output, /created the account/);
  assert.deepEqual(JSON.parse(fs.readFileSync(loginFile, 'utf8')), { user: 'admin', password }, 'the login file is left as it was');
  const stillByFile = await envList(other.address, { file: loginFile });
  assert.equal(stillByFile.code, 0, stillByFile.stderr);
  assert.equal(await other.proc.stop('SIGTERM'), 0);
});

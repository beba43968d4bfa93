/**
 * The REPL as a person uses it, through a real pseudo-terminal (util-linux
 * `script` gives it one): the password asked without echo, the prompt with
 * the account, the server and the environment in use, `use`, `set`, `get`,
 * Tab completion of a key, a value over several lines, a bad command,
 * Ctrl-C on a half-typed line, colours, and Ctrl-D to leave.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN_PASSWORD, CLI, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-pty-');
let address: string;

before(async () => {
  const started = await startServer(path.join(dir, 'server'));
  procs.track(started.proc);
  address = started.address;
  assert.equal((await run(['admin', '--server', address, 'env', 'add', 'demo'])).code, 0);
});

after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Strips colours and cursor moves, for matching. */
// eslint-disable-next-line no-control-regex -- colours and cursor moves are escape sequences: ESC [ …
const plain = (text: string): string => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

test('a person at a terminal: log in, use, set, get, complete, a multi-line value, a bad command, Ctrl-C, Ctrl-D', async () => {
  const command = [process.execPath, CLI, 'admin', '--server', address, '--user', 'admin'].map((w) => `'${w}'`).join(' ');
  const env: NodeJS.ProcessEnv = { ...process.env, VITEFA_HISTORY_FILE: path.join(dir, 'history'), TERM: 'xterm', COLUMNS: '120' };
  delete env.VITEFA_PASSWORD;
  delete env.NO_COLOR;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let mark = 0;
  /** Waits for `pattern` in what the terminal showed since the last step. */
  const expect = async (pattern: RegExp): Promise<string> => {
    const found = await waitFor(`terminal output matching ${pattern} (got: ${JSON.stringify(plain(out.slice(mark)).slice(-400))})`, () => {
      const m = pattern.exec(plain(out.slice(mark)));
      return m === null ? undefined : m;
    }, 15_000);
    mark = out.length;
    return found[0];
  };
  const type = (text: string): void => void child.stdin.write(text);

  await expect(/password for admin: /);
  type(`${ADMIN_PASSWORD}\r`);
  await expect(/logged in as admin \(admin\)[^\n]*\n[\s\S]*admin@[^\s/]+\/127\.0\.0\.1:\d+> $/);
  type('use demo\r');
  await expect(/admin@[^\s/]+\/127\.0\.0\.1:\d+ demo> $/);
  type('set greeting hi\r');
  await expect(/demo: revision \d+ \(1 key changed\)[\s\S]*demo> $/);
  // Tab completes the key from the environment in use.
  type('get gre\t');
  await expect(/get greeting/);
  type('\r');
  await expect(/\nhi\n[\s\S]*demo> $/);
  // A JSON value over several lines: the REPL waits while a bracket is open.
  type('set doc {\r');
  await expect(/\.\.\. $/);
  type('"a": [1,\r');
  await expect(/\.\.\. $/);
  type('2]}\r');
  await expect(/demo: revision \d+ \(1 key changed\)/);
  type('get doc\r');
  await expect(/\{"a":\[1,2\]\}/);
  type('bogus\r');
  await expect(/error: unknown command "bogus"[\s\S]*demo> $/);
  // Ctrl-C throws away a half-typed line, and the REPL goes on.
  type('set half');
  await expect(/set half/);
  type('\x03');
  await expect(/\^C\n[\s\S]*demo> $/);
  type('get greeting\r');
  await expect(/\nhi\n/);
  type('\x04');
  assert.equal(await exited, 0);
  assert.ok(!out.includes(ADMIN_PASSWORD), 'the password was not echoed');
  // eslint-disable-next-line no-control-regex -- a colour is an escape sequence: ESC [
  assert.match(out, /\x1b\[/, 'colours on a terminal');
  assert.equal((await run(['admin', '--server', address, 'get', 'demo', 'doc'])).stdout, '{"a":[1,2]}\n');
  assert.ok(!fs.readFileSync(path.join(dir, 'history'), 'utf8').includes('set half'), 'a cancelled line is not kept');
});

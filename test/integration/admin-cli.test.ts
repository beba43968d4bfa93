/**
 * The admin tool as a script or a person uses it, beyond the REPL: `watch`
 * following releases live, help for every command, and colours only for a
 * terminal without NO_COLOR.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { COMMAND_NAMES, parseSince } from '../../src/admin/commands.js';
import { styleFor, table } from '../../src/admin/format.js';
import { isLoopback } from '../../src/server/edge/session.js';
import { Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-admin-');
let address: string;
before(async () => {
  const started = await startServer(path.join(dir, 'server'));
  procs.track(started.proc);
  address = started.address;
  assert.equal((await run(['admin', '--server', address, 'env', 'add', 'live'])).code, 0);
});
after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('watch prints each release as it lands (only the key asked for), until Ctrl-C', async () => {
  const watcher = procs.track(new Proc(['admin', '--server', address, 'watch', 'live', 'wanted']));
  await watcher.waitForOutput(/watching live from revision \d+/);
  await run(['admin', '--server', address, 'set', 'live', 'other', '1']);
  await run(['admin', '--server', address, 'set', 'live', 'wanted', '"yes"']);
  await watcher.waitForOutput(/live@\d+ .* set {2}by admin\n {2}wanted = "yes"/);
  assert.doesNotMatch(watcher.stdout, /other/, 'only the key asked for');
  watcher.child.kill('SIGINT');
  assert.equal(await watcher.exited, 0);
  const json = procs.track(new Proc(['admin', '--server', address, '--json', 'watch', 'live']));
  // It prints nothing before the first release: write until one is printed (a write before it subscribed is not).
  let n = 0;
  const line = await waitFor('a release printed as JSON', async () => {
    await run(['admin', '--server', address, 'set', 'live', 'k', String(++n)]);
    return json.stdout.match(/\{"t":4,[^\n]*\}\n/) ?? undefined;
  }, 60_000, 200);
  const { changes } = JSON.parse(line[0]) as { changes: [string, string][] };
  assert.equal(changes.length, 1);
  assert.equal(changes[0][0], 'k');
  assert.ok(Number(changes[0][1]) >= 1 && Number(changes[0][1]) <= n, JSON.stringify(changes));
  json.child.kill('SIGTERM');
  assert.equal(await json.exited, 0);
});

test('vitefa admin --help lists every command, and help COMMAND explains one', async () => {
  const help = await run(['admin', '--help']);
  assert.equal(help.code, 0);
  for (const name of COMMAND_NAMES) assert.ok(help.stdout.includes(`  ${name}`), `--help lists ${name}`);
  const one = await run(['admin', 'help', 'token', 'add']);
  assert.equal(one.code, 0);
  assert.match(one.stdout, /^usage: token add NAME \[ENV…\]\n.*printed once[\s\S]*shown only now/);
  const unknown = await run(['admin', 'help', 'nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^vitefa: no command "nope"/);
});

test('colours only on a terminal and never with NO_COLOR; tables are aligned', () => {
  const tty = { isTTY: true } as unknown as NodeJS.WriteStream;
  const pipe = { isTTY: false } as unknown as NodeJS.WriteStream;
  // eslint-disable-next-line no-control-regex -- a colour is an escape sequence: ESC [
  assert.match(styleFor(tty, {}).bold('x'), /\x1b\[/);
  assert.equal(styleFor(tty, { NO_COLOR: '1' }).bold('x'), 'x');
  assert.equal(styleFor(pipe, {}).bold('x'), 'x');
  assert.equal(table(['A', 'LONGER'], [['xyz', '1'], ['w', '22']]), 'A    LONGER\nxyz  1\nw    22');
});

test('audit --since takes a time or an age', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  assert.equal(parseSince('30m', now), now - 30 * 60_000);
  assert.equal(parseSince('2d', now), now - 2 * 86_400_000);
  assert.equal(parseSince('2026-12-01T08:00:00Z', now), Date.parse('2026-12-01T08:00:00Z'));
  assert.throws(() => parseSince('yesterday', now), /--since takes a time/);
});

test('only loopback listen addresses go without the TLS warning', () => {
  for (const host of ['127.0.0.1', '127.9.9.9', '::1', 'localhost']) assert.equal(isLoopback(host), true, host);
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'config.example.com']) assert.equal(isLoopback(host), false, host);
});

test("options after the command's words: audit's own --user filters (the login stays the admin's), the admin's --request-id still applies", async () => {
  const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);
  const added = await run(['admin', '--server', address, 'user', 'add', 'vic', 'viewer', 'live'], { env: { VITEFA_NEW_PASSWORD: 'vic-password-1' } });
  assert.equal(added.code, 0, added.stderr);
  // Before, `--user vic` here was taken as the login: six runs logged in as vic with the admin's password and locked vic out.
  for (let i = 0; i < 6; i++) {
    const filtered = await admin('audit', '--user', 'vic', '--limit', '5');
    assert.equal(filtered.code, 0, filtered.stderr);
  }
  const asVic = await run(['admin', '--server', address, 'env', 'list'], { env: { VITEFA_USER: 'vic', VITEFA_PASSWORD: 'vic-password-1' } });
  assert.equal(asVic.code, 0, asVic.stderr);
  const json = await admin('--json', 'audit', '--user', 'vic', '--limit', '50');
  const records = JSON.parse(json.stdout) as { entries: { actor: string }[] };
  assert.ok(records.entries.length > 0 && records.entries.every((e) => e.actor === 'vic'), json.stdout);
  const first = await admin('set', 'live', 'once', '1', '--request-id', 'after-words-1');
  const again = await admin('set', 'live', 'once', '1', '--request-id=after-words-1');
  assert.equal(first.code, 0, first.stderr);
  const rev = first.stdout.match(/revision (\d+)/)?.[1];
  assert.ok(rev !== undefined, first.stdout);
  assert.match(again.stdout, new RegExp(`request id was applied before, as revision ${rev} .*nothing was written now`));
  assert.equal((await admin('help', 'user')).stdout.match(/^usage: user /gm)?.length, 4);
});

test('a set VALUE that opens as JSON does but does not parse: exit 2, one line by position, nothing stored; given as a JSON string it is stored', async () => {
  const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);
  const refused = await admin('set', 'live', 'typo', '{"a":1');
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr, `vitefa: value is not valid JSON at character 7 (expected ',' or '}'); to store such text as a string, give it as a JSON string, e.g. '"{\\"a\\":1"'\n`);
  assert.match((await admin('get', 'live', 'typo')).stderr, /^vitefa: key typo does not exist in live/);
  assert.equal((await admin('set', 'live', 'typo', '"{\\"a\\":1"')).code, 0);
  assert.equal((await admin('get', 'live', 'typo')).stdout, '{"a":1\n');
  assert.equal((await admin('set', 'live', 'plain', 'a plain {text')).code, 0);
  assert.equal((await admin('get', 'live', 'plain')).stdout, 'a plain {text\n');
  // The REPL: the error line, and the session goes on.
  const session = await run(['admin', '--server', address], {
    input: ['set live typo2 {"a":1]', 'get live typo2', 'quit', ''].join('\n'),
    env: { VITEFA_HISTORY_FILE: path.join(dir, 'history') },
  });
  assert.equal(session.code, 0, session.stderr);
  assert.match(session.stdout, /error: value is not valid JSON at character 7 \(expected ',' or '\}'\); to store such text as a string/);
  assert.match(session.stdout, /error: key typo2 does not exist in live/);
});

test('new passwords off a terminal: ROLE and the words are checked first, then the error names VITEFA_NEW_PASSWORD', async () => {
  const noNew = { VITEFA_NEW_PASSWORD: '' };
  const role = await run(['admin', '--server', address, 'user', 'add', 'zed', 'superuser'], { env: noNew });
  assert.equal(role.code, 2, role.stderr);
  assert.equal(role.stderr, 'vitefa: invalid role "superuser": one of viewer, editor, admin\n');
  // Checked before connecting: no server needed.
  const offline = await run(['admin', '--server', '127.0.0.1:1', 'user', 'add', 'zed', 'superuser', 'live'], { env: noNew });
  assert.equal(offline.code, 2, offline.stderr);
  assert.match(offline.stderr, /^vitefa: invalid role "superuser"/);
  const extra = await run(['admin', '--server', address, 'passwd', 'extra'], { env: noNew });
  assert.equal(extra.code, 2, extra.stderr);
  assert.equal(extra.stderr, 'vitefa: usage: passwd\n');
  for (const [words, account] of [[['user', 'add', 'wendy', 'viewer', 'live'], 'wendy'], [['user', 'passwd', 'admin'], 'admin'], [['passwd'], 'admin']] as const) {
    const asked = await run(['admin', '--server', address, ...words], { env: noNew });
    assert.equal(asked.code, 2, `${words.join(' ')}: ${asked.stderr}`);
    assert.equal(asked.stderr, `vitefa: new password for ${account}: not on a terminal (give it in VITEFA_NEW_PASSWORD instead)\n`, words.join(' '));
  }
  const { stdout } = await run(['admin', '--server', address, 'user', 'list']);
  assert.doesNotMatch(stdout, /wendy|zed/);
});

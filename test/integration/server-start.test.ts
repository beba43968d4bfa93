/**
 * A server whose store refuses it for good exits with one clear line instead
 * of retrying for ever: wrong database credentials, a database it may not
 * use, an unknown database it may not create, a data folder in use by
 * another server. An unreachable database, which may come back, is waited for.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { databaseName, dropDatabase, MYSQL_BASE } from '../support/mysql.js';
import { freePort, Proc, Procs, startServer, tempDir, waitFor } from '../support/procs.js';

const procs = new Procs();
const dir = tempDir('vitefa-start-');
const user = databaseName('vt_u_').slice(0, 16);
const allowed = databaseName();
const base = new URL(MYSQL_BASE);
const at = `${base.hostname}:${base.port || 3306}`;

before(async () => {
  const conn = await mysql.createConnection(MYSQL_BASE);
  try {
    await conn.query(`CREATE DATABASE \`${allowed}\``);
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
    // May use one database, and read (not create) every other.
    await conn.query(`GRANT ALL ON \`${allowed}\`.* TO '${user}'@'%'`);
    await conn.query(`GRANT SELECT ON *.* TO '${user}'@'%'`);
  } finally {
    await conn.end();
  }
});

after(async () => {
  await procs.killAll();
  fs.rmSync(dir, { recursive: true, force: true });
  const conn = await mysql.createConnection(MYSQL_BASE);
  try {
    await conn.query(`DROP USER IF EXISTS '${user}'@'%'`);
  } finally {
    await conn.end();
  }
  await dropDatabase(allowed);
});

/** Runs a server that must exit by itself; returns its exit code and stderr. */
async function refusedStart(store: string): Promise<{ code: number | null; stderr: string }> {
  const port = await freePort();
  const proc = procs.track(new Proc(['server', '--listen', `127.0.0.1:${port}`, '--store', store, '--workers', '0']));
  const code = await Promise.race([
    proc.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`server with ${store} did not exit: ${proc.output}`)), 20_000)),
  ]);
  return { code, stderr: proc.stderr };
}

function oneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${stderr}`);
  assert.match(lines[0], pattern);
}

test('wrong database credentials: exit 1 with one line', async () => {
  const { code, stderr } = await refusedStart(`mysql://${user}:wrong@${at}/${allowed}`);
  assert.equal(code, 1);
  oneLine(stderr, /^vitefa: database mysql:\/\/vt_u_\w+@[^ ]+ refused this server: Access denied for user/);
  assert.doesNotMatch(stderr, /wrong/, 'the password is never printed');
});

test('a database the user may not use, or that does not exist and may not be created: exit 1 with one line', async () => {
  const missing = databaseName();
  const { code, stderr } = await refusedStart(`mysql://${user}:pw@${at}/${missing}`);
  assert.equal(code, 1);
  oneLine(stderr, new RegExp(`^vitefa: database .*/${missing} refused this server: (Access denied|Unknown database)`));
});

test('a data folder in use by a running server: the second exits 1 with one line', async () => {
  const data = path.join(dir, 'shared');
  const { proc: first } = await startServer(data, ['--workers', '0']);
  procs.track(first);
  const { code, stderr } = await refusedStart(data);
  assert.equal(code, 1);
  oneLine(stderr, /^vitefa: data folder .*shared is in use by server process \d+$/);
  assert.equal(first.child.exitCode, null, 'the first server runs on');
});

test('an unreachable database is waited for, not given up on', async () => {
  const port = await freePort();
  const server = procs.track(new Proc(['server', '--listen', `127.0.0.1:${port}`, '--store', `mysql://root@127.0.0.1:${await freePort()}/x`, '--workers', '0']));
  await server.waitForOutput(/unreachable.*retrying in/, 30_000);
  // It tries again after the first failure, rather than giving up.
  await waitFor('a second attempt', () => (server.output.match(/unreachable.*retrying in/g)?.length ?? 0) >= 2, 60_000);
  assert.equal(server.child.exitCode, null, 'still waiting');
});

#!/usr/bin/env node
// What `npm test` needs beyond npm, checked (and where possible installed)
// before the suite runs, so a fresh machine needs nothing done by hand:
// - Debian's lmdb-utils (mdb_dump) and python3-lmdb: the interop test reads
//   the agent store with them, the proof that other languages open it; and
//   openssl, with which the TLS tests make their certificates.
//   Installed with apt-get when missing and this process may (root on a
//   Debian-like system); otherwise one line says what is missing and how to
//   get it.
// - MySQL or MariaDB at VITEFA_TEST_MYSQL (default mysql://root@127.0.0.1:3306):
//   the store tests run against the real server. It is not installed here;
//   if it does not answer, one line says so.
import { spawnSync } from 'node:child_process';
import net from 'node:net';

const PYTHON = '/usr/bin/python3';
const has = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const missing = () => {
  const out = [];
  if (!has('sh', ['-c', 'command -v mdb_dump'])) out.push('lmdb-utils');
  if (!has(PYTHON, ['-c', 'import lmdb'])) out.push('python3-lmdb');
  if (!has('sh', ['-c', 'command -v openssl'])) out.push('openssl');
  return out;
};

function fail(line) {
  console.error(`npm test: ${line}`);
  process.exit(1);
}

let packages = missing();
if (packages.length > 0) {
  const canInstall = process.getuid?.() === 0 && has('sh', ['-c', 'command -v apt-get']);
  if (!canInstall) {
    fail(`missing ${packages.join(' and ')} (the interop test reads the agent store with them; the TLS tests make certificates with openssl): install with: sudo apt-get install ${packages.join(' ')}`);
  }
  console.log(`npm test: installing Debian's ${packages.join(' ')} for the interop test (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const install = update.status === 0 && spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env });
  packages = missing();
  if (!install || install.status !== 0 || packages.length > 0) {
    fail(`could not install ${packages.join(' and ')} with apt-get; install them with: apt-get install ${packages.join(' ')}`);
  }
}

const url = new URL(process.env.VITEFA_TEST_MYSQL ?? 'mysql://root@127.0.0.1:3306');
const port = Number(url.port || 3306);
const reachable = await new Promise((resolve) => {
  const socket = net.connect({ host: url.hostname, port, timeout: 3000 });
  socket.once('connect', () => resolve(true));
  socket.once('error', () => resolve(false));
  socket.once('timeout', () => resolve(false));
}).finally(() => undefined);
if (!reachable) {
  fail(`no MySQL or MariaDB at ${url.hostname}:${port} (the store tests run against it): start one (on Debian: start-stop-daemon --start --background --exec /usr/sbin/mariadbd), or set VITEFA_TEST_MYSQL=mysql://user:pass@host:port`);
}
process.exit(0);

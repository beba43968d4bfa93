import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { resolveServerConfig } from '../../src/server/process/config.js';
import { LIMIT_DEFAULTS } from '../../src/server/limits.js';
import { databaseName, dropDatabase, MYSQL_BASE, query } from '../support/mysql.js';
import { run, tempDir } from '../support/procs.js';

const dir = tempDir('vitefa-config-');
const dbs: string[] = [];
after(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const db of dbs) await dropDatabase(db);
});

function configFile(body: unknown): string {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
  return file;
}

test('settings come from the flag, else the variable, else the config file, else the default', () => {
  const file = configFile({ listen: '127.0.0.1:7501', store: 'mysql://u@h:3306/file', history: 7, passwordIterations: 5000 });
  const fromFile = resolveServerConfig({ config: file }, {});
  assert.deepEqual(fromFile.listen, [{ host: '127.0.0.1', port: 7501 }]);
  assert.equal(fromFile.store, 'mysql://u@h:3306/file');
  assert.equal(fromFile.history, 7);
  assert.equal(fromFile.passwordIterations, 5000);
  assert.equal(resolveServerConfig({ config: file }, { VITEFA_PASSWORD_ITERATIONS: '8000' }).passwordIterations, 8000);
  const fromEnv = resolveServerConfig({}, { VITEFA_CONFIG: file, VITEFA_STORE: 'mysql://u@h:3306/env', VITEFA_HISTORY: '9' });
  assert.equal(fromEnv.store, 'mysql://u@h:3306/env');
  assert.equal(fromEnv.history, 9);
  const fromFlag = resolveServerConfig({ config: file, store: '/srv/data', history: '11' }, { VITEFA_STORE: 'mysql://u@h/env' });
  assert.equal(fromFlag.store, '/srv/data');
  assert.equal(fromFlag.history, 11);
  const defaults = resolveServerConfig({}, {});
  assert.deepEqual(defaults.listen, [{ host: '127.0.0.1', port: 7400 }]);
  assert.equal(defaults.store, './data/server');
  assert.equal(defaults.maxAgents, 100_000);
  assert.equal(defaults.passwordIterations, 600_000);
  assert.equal(defaults.adminPassword, undefined);
  assert.equal(resolveServerConfig({}, { VITEFA_ADMIN_PASSWORD: 'first' }).adminPassword, 'first');
});

test('a bad config file or setting is one clear error', () => {
  assert.throws(() => resolveServerConfig({ config: configFile({ lisen: 'x' }) }, {}), /config file .*: .*lisen/);
  assert.throws(() => resolveServerConfig({ config: configFile({ history: -1 }) }, {}), /config file .*: history: /);
  assert.throws(() => resolveServerConfig({ config: configFile('{not json') }, {}), /config file .*: .*JSON/);
  assert.throws(() => resolveServerConfig({ config: path.join(dir, 'missing.json') }, {}), /config file .*missing\.json: ENOENT/);
  assert.throws(() => resolveServerConfig({ history: 'ten' }, {}), /--history must be a positive whole number/);
  assert.throws(() => resolveServerConfig({ listen: 'nowhere' }, {}), /invalid address "nowhere"/);
  assert.throws(() => resolveServerConfig({ config: configFile({ adminToken: 'x' }) }, {}), /config file .*adminToken/, 'the shared admin token is gone: accounts replaced it');
  assert.throws(() => resolveServerConfig({ config: configFile({ passwordIterations: 10 }) }, {}), /passwordIterations/);
  assert.throws(() => resolveServerConfig({}, { VITEFA_PASSWORD_ITERATIONS: '100' }), /VITEFA_PASSWORD_ITERATIONS must be from 4096/);
});

test('with a shared store, an address that binds every interface needs the address others reach it at', () => {
  const store = 'mysql://u@h:3306/db';
  assert.throws(() => resolveServerConfig({ store, listen: '0.0.0.0:7400' }, {}), /--listen 0\.0\.0\.0:7400 binds every interface: .*--advertise HOST:PORT/);
  assert.throws(() => resolveServerConfig({ store, listen: '[::]:7400', advertise: '10.0.0.5:7400' }, {}), /the peer port binds every interface: give --peer-advertise/);
  assert.throws(() => resolveServerConfig({ store, peerListen: '0.0.0.0:7401' }, {}), /--peer-advertise/);
  const ok = resolveServerConfig({ store, listen: '0.0.0.0:7400', advertise: '10.0.0.5:7400', peerAdvertise: '10.0.0.5:7401' }, {});
  assert.deepEqual(ok.advertise, ['10.0.0.5:7400']);
  assert.equal(ok.peerAdvertise, '10.0.0.5:7401');
  // The embedded store serves one server: nobody else needs its address.
  assert.deepEqual(resolveServerConfig({ listen: '0.0.0.0:7400' }, {}).listen, [{ host: '0.0.0.0', port: 7400 }]);
});

test('every limit can be set in the config file; the rest keep their defaults; a bad one is one clear error', () => {
  const config = resolveServerConfig({ config: configFile({ limits: { helloTimeoutMs: 2500, adminReserve: 8 } }) }, {});
  assert.equal(config.limits.helloTimeoutMs, 2500);
  assert.equal(config.limits.adminReserve, 8);
  assert.deepEqual({ ...config.limits, helloTimeoutMs: LIMIT_DEFAULTS.helloTimeoutMs, adminReserve: LIMIT_DEFAULTS.adminReserve }, LIMIT_DEFAULTS);
  assert.deepEqual(resolveServerConfig({}, {}).limits, LIMIT_DEFAULTS);
  assert.throws(() => resolveServerConfig({ config: configFile({ limits: { helloTimeoutMS: 1 } }) }, {}), /config file .*: limits: .*helloTimeoutMS/);
  assert.throws(() => resolveServerConfig({ config: configFile({ limits: { pendingHellos: 0 } }) }, {}), /config file .*: limits\.pendingHellos: /);
  assert.throws(() => resolveServerConfig({ config: configFile({ limits: { valueBytes: 1.5 } }) }, {}), /config file .*: limits\.valueBytes: /);
  assert.equal(resolveServerConfig({ config: configFile({ limits: { messageDepth: 1000 } }) }, {}).limits.messageDepth, 64, 'nesting is capped at what the decoder supports');
});

test('docs/limits.md lists every limit with its default', () => {
  const doc = fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'docs', 'limits.md'), 'utf8');
  for (const [name, value] of Object.entries(LIMIT_DEFAULTS)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
    assert.ok(row, `${name} is documented`);
    const shown = row.split('|')[2].trim();
    const asNumber = (text: string): number => {
      const m = /^([\d,]+)(?: (KiB|MiB))?/.exec(text);
      if (!m) return NaN;
      return Number(m[1].replace(/,/g, '')) * (m[2] === 'KiB' ? 1024 : m[2] === 'MiB' ? 1024 * 1024 : 1);
    };
    assert.equal(asNumber(shown), value, `${name}: documented "${shown}", default ${value}`);
  }
});

test('`server --migrate-only` creates the schema from a config file and exits; a newer schema is refused', async () => {
  const db = databaseName();
  dbs.push(db);
  const file = configFile({ store: `${MYSQL_BASE}/${db}` });
  const first = await run(['server', '--config', file, '--migrate-only']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`schema of mysql://root@127\\.0\\.0\\.1:3306/${db} is up to date`));
  const tables = await query<Record<string, string>>(db, 'SHOW TABLES');
  assert.ok(tables.length >= 5, `tables: ${JSON.stringify(tables)}`);
  const again = await run(['server', '--migrate-only'], { env: { VITEFA_STORE: `${MYSQL_BASE}/${db}` } });
  assert.equal(again.code, 0, again.stderr);
  await query(db, 'UPDATE vitefa_schema SET version = version + 100');
  const refused = await run(['server', '--store', `${MYSQL_BASE}/${db}`]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^vitefa: database .* has schema \d+, newer than this build knows \(\d+\)\n$/);
});

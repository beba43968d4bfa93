/**
 * The admin's side of schemas without a server: the words of schema
 * set/get/del/list/history/rollback and --allow-growth as requests, the
 * flags refused where they do not belong, a schema file that cannot be
 * used, and how schemas, warnings, refusals (as text and as JSON) and the
 * schemas of status print.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareCommand, helpText, type CommandIO } from '../../src/admin/commands.js';
import { formatResult } from '../../src/admin/format.js';
import { isSchemaRefusal, refusalJson, refusalLines, schemaWarningLines, warningLines } from '../../src/admin/format-schemas.js';
import { unanswered } from '../../src/admin/outcome.js';
import { describe as describeError } from '../../src/admin/repl.js';
import { LocalErrorCode, RemoteError, VitefaError, WireError, type SchemaViolation, type StatusResult } from '../../src/protocol/index.js';

const io: CommandIO = { account: 'admin', passwordIterations: 1, newPassword: () => Promise.resolve('unused-password') };

async function request(...words: string[]): Promise<unknown> {
  return (await prepareCommand(words, io)).request;
}

async function refused(words: string[], message: RegExp, code = 'E_USAGE'): Promise<void> {
  await assert.rejects(prepareCommand(words, io), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-admin-schemas-'));
const file = (name: string, text: string): string => {
  const at = path.join(dir, name);
  fs.writeFileSync(at, text);
  return at;
};
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const violation = (over: Partial<SchemaViolation> = {}): SchemaViolation => ({
  env: 'prod/eu', key: 'db.pool', path: '/max', keyword: 'maximum', message: 'must be <= 500', schema: 'prod/* db.*', version: 3, ...over,
});

describe('schema commands as requests', () => {
  test('schema set sends the file\'s text as read, with --mode and --whole when given', async () => {
    const text = '{\n  "type": "object",\n  "properties": { "max": { "maximum": 500 } }\n}\n';
    const schemaFile = file('pool.json', text);
    assert.deepEqual(await request('schema', 'set', 'prod/*', 'db.*', schemaFile), { op: 'schema.set', envPattern: 'prod/*', keyPattern: 'db.*', schema: text });
    assert.deepEqual(await request('schema', 'set', 'prod/*', 'db.*', schemaFile, '--mode', 'warn', '--whole'), {
      op: 'schema.set', envPattern: 'prod/*', keyPattern: 'db.*', schema: text, mode: 'warn', whole: true,
    });
    assert.deepEqual(await request('schema', 'set', '--mode', 'enforce', '*', '*', schemaFile), { op: 'schema.set', envPattern: '*', keyPattern: '*', schema: text, mode: 'enforce' });
  });

  test('a schema file missing, or not JSON, is one E_BAD_FILE error', async () => {
    await refused(['schema', 'set', 'prod', 'db', path.join(dir, 'absent.json')], /^cannot read .*absent\.json: ENOENT$/, LocalErrorCode.BAD_FILE);
    await refused(['schema', 'set', 'prod', 'db', file('broken.json', '{"type": "object",')], /broken\.json is not valid JSON at character \d+/, LocalErrorCode.BAD_FILE);
    await refused(['schema', 'set', 'prod', 'db', file('empty.json', '')], /empty\.json is not valid JSON/, LocalErrorCode.BAD_FILE);
    await refused(['schema', 'set', 'prod', 'db', dir], /^cannot read .*: EISDIR$/, LocalErrorCode.BAD_FILE);
  });

  test('schema get, del, list, history, rollback', async () => {
    assert.deepEqual(await request('schema', 'get', 'prod/*', 'db.*'), { op: 'schema.get', envPattern: 'prod/*', keyPattern: 'db.*' });
    assert.deepEqual(await request('schema', 'get', 'prod/*', 'db.*', '--whole', '--version', '2'), { op: 'schema.get', envPattern: 'prod/*', keyPattern: 'db.*', whole: true, version: 2 });
    assert.deepEqual(await request('schema', 'del', 'prod/*', 'db.*'), { op: 'schema.del', envPattern: 'prod/*', keyPattern: 'db.*' });
    assert.deepEqual(await request('schema', 'del', 'prod/*', '*', '--whole'), { op: 'schema.del', envPattern: 'prod/*', keyPattern: '*', whole: true });
    assert.deepEqual(await request('schema', 'list'), { op: 'schema.list' });
    assert.deepEqual(await request('schema', 'list', 'prod/eu'), { op: 'schema.list', env: 'prod/eu' });
    assert.deepEqual(await request('schema', 'history', 'prod/*', 'db.*'), { op: 'schema.history', envPattern: 'prod/*', keyPattern: 'db.*' });
    assert.deepEqual(await request('schema', 'rollback', 'prod/*', 'db.*', '2', '--whole'), { op: 'schema.rollback', envPattern: 'prod/*', keyPattern: 'db.*', whole: true, version: 2 });
    // After `use prod` in the REPL a schema still names its own patterns.
    assert.deepEqual((await prepareCommand(['schema', 'list'], io, 'prod')).request, { op: 'schema.list' });
  });

  test('--allow-growth on set, merge, apply, rollback and env layers', async () => {
    const apply = file('apply.json', '{"a": 1}');
    assert.deepEqual(await request('set', 'prod', 'k', '1', '--allow-growth'), { op: 'set', env: 'prod', key: 'k', value: '1', allowGrowth: true });
    assert.deepEqual(await request('set', 'prod', 'k', '1'), { op: 'set', env: 'prod', key: 'k', value: '1' });
    assert.deepEqual(await request('merge', 'prod', 'k', '{"a":1}', '--allow-growth'), { op: 'merge', env: 'prod', key: 'k', value: '{"a":1}', allowGrowth: true });
    assert.deepEqual(await request('apply', 'prod', apply, '--allow-growth'), { op: 'apply', env: 'prod', entries: [['a', '1']], replace: false, allowGrowth: true });
    // A dry run writes nothing: there is no growth to allow.
    assert.deepEqual(await request('apply', 'prod', apply, '--allow-growth', '--dry-run'), { op: 'plan', env: 'prod', entries: [['a', '1']], replace: false });
    assert.deepEqual(await request('rollback', 'prod', '7', '--allow-growth'), { op: 'rollback', env: 'prod', rev: 7, allowGrowth: true });
    assert.deepEqual(await request('env', 'layers', 'prod', 'base', '--allow-growth'), { op: 'env.layers', env: 'prod', parents: ['base'], allowGrowth: true });
    assert.deepEqual(await request('env', 'layers', 'prod', '--none', '--allow-growth'), { op: 'env.layers', env: 'prod', parents: [], allowGrowth: true });
  });

  test('usage errors: arity, modes, versions, flags with the wrong command', async () => {
    const schemaFile = file('ok.json', '{}');
    await refused(['schema', 'set', 'prod', 'db'], /^usage: schema set ENV_PATTERN KEY_PATTERN FILE \[--mode enforce\|warn\] \[--whole\]$/);
    await refused(['schema', 'set', 'prod', 'db', schemaFile, '--mode', 'strict'], /^--mode takes enforce or warn, got "strict"$/);
    await refused(['schema', 'set', 'prod', 'db', schemaFile, '--mode'], /^--mode takes a value$/);
    await refused(['schema', 'get', 'prod'], /^usage: schema get ENV_PATTERN KEY_PATTERN \[--whole\] \[--version N\]$/);
    await refused(['schema', 'get', 'prod', 'db', '--version', '0'], /^not a schema version number \(1, 2, …\): 0$/);
    await refused(['schema', 'get', 'prod', 'db', '--version', 'latest'], /^not a schema version number/);
    await refused(['schema', 'rollback', 'prod', 'db', 'v2'], /^not a schema version number \(1, 2, …\): v2$/);
    await refused(['schema', 'rollback', 'prod', 'db'], /^usage: schema rollback ENV_PATTERN KEY_PATTERN VERSION \[--whole\]$/);
    await refused(['schema', 'list', 'a', 'b'], /^usage: schema list \[ENV\]$/);
    await refused(['schema', 'history', 'prod', 'db', 'x'], /^usage: schema history /);
    await refused(['schema', 'del', 'prod'], /^usage: schema del /);
    await refused(['schema', 'list', '--whole'], /^--whole goes with schema set, schema get, schema del, schema history, schema rollback only$/);
    await refused(['schema', 'del', 'prod', 'db', '--mode', 'warn'], /^--mode goes with schema set only$/);
    await refused(['schema', 'history', 'prod', 'db', '--version', '2'], /^--version goes with schema get only$/);
    await refused(['get', 'prod', 'db', '--allow-growth'], /^--allow-growth goes with set, merge, apply, rollback, env layers only$/);
    await refused(['schema', 'set', 'prod', 'db', schemaFile, '--allow-growth'], /^--allow-growth goes with /);
    await refused(['env', 'layers', 'prod', '--show', '--allow-growth'], /^--show and --allow-growth do not go together/);
    await refused(['schema', 'nope'], /^usage: schema set \| schema get \| schema del \| schema list \| schema history \| schema rollback$/);
  });

  test('help names every schema command, with more about each', () => {
    const all = helpText();
    for (const name of ['set', 'get', 'del', 'list', 'history', 'rollback']) assert.match(all, new RegExp(`^  schema ${name} `, 'm'));
    const group = helpText('schema');
    assert.equal(group.match(/^usage: schema /gm)?.length, 6);
    assert.match(helpText('schema set'), /--mode enforce \(the default\)/);
    for (const name of ['set', 'merge', 'apply', 'rollback', 'env layers']) assert.match(helpText(name), /--allow-growth/, name);
  });
});

describe('schemas as they print', () => {
  const plain = 'text' as const;

  test('schema get: a header line, then the schema indented by 2 spaces; --json the answer', () => {
    const result = {
      envPattern: 'prod/*', keyPattern: 'db.*', whole: false, mode: 'warn' as const, version: 3, time: Date.UTC(2026, 2, 1, 10, 0, 0), author: 'alice', bytes: 44,
      schema: '{"type":"object","properties":{"max":{"maximum":500}}}',
    };
    const req = { op: 'schema.get' as const, envPattern: 'prod/*', keyPattern: 'db.*' };
    assert.equal(formatResult(req, result, plain), [
      'schema prod/* db.* v3  warn  by alice  2026-03-01T10:00:00Z',
      '{',
      '  "type": "object",',
      '  "properties": {',
      '    "max": {',
      '      "maximum": 500',
      '    }',
      '  }',
      '}',
    ].join('\n'));
    assert.equal(formatResult(req, result, 'json'), JSON.stringify(result));
    // What the server sent is shown escaped: a control character in a string stays JSON's escape.
    const odd = formatResult(req, { ...result, whole: true, author: 'al\u001b[2Jice', schema: '{"title":"a\\u001bb\u2028"}' }, plain);
    assert.equal(odd, 'schema prod/* db.* (whole) v3  warn  by al\\u001b[2Jice  2026-03-01T10:00:00Z\n{\n  "title": "a\\u001bb\\u2028"\n}');
    // Text that is not JSON (never sent by a server) shows as it came, escaped.
    assert.equal(formatResult(req, { ...result, schema: '{\u001b' }, plain).split('\n')[1], '{\\u001b');
  });

  test('schema list: a table with FAILING for warn mode; none: a line that says so', () => {
    const base = { time: 0, bytes: 10 };
    const text = formatResult({ op: 'schema.list' }, {
      schemas: [
        { ...base, envPattern: 'prod/*', keyPattern: 'db.*', whole: false, mode: 'warn', version: 3, author: 'alice', failing: 4 },
        { ...base, envPattern: '*', keyPattern: '*', whole: true, mode: 'enforce', version: 1, author: 'bob' },
      ],
    }, plain);
    assert.deepEqual(text.split('\n').map((l) => l.split(/ {2,}/)), [
      ['ENV_PATTERN', 'KEY_PATTERN', 'WHOLE', 'MODE', 'VERSION', 'FAILING', 'AUTHOR'],
      ['prod/*', 'db.*', 'no', 'warn', '3', '4', 'alice'],
      ['*', '*', 'yes', 'enforce', '1', '-', 'bob'],
    ]);
    assert.equal(formatResult({ op: 'schema.list', env: 'x' }, { schemas: [] }, plain), '(no schemas)');
  });

  test('schema history: one line per version, newest first, a deletion as such', () => {
    const t = Date.UTC(2026, 0, 2, 3, 4, 5);
    const text = formatResult({ op: 'schema.history', envPattern: 'prod/*', keyPattern: 'db.*' }, {
      versions: [
        { version: 3, rev: 12, time: t, author: 'bob', deleted: true, bytes: 0 },
        { version: 2, rev: 9, time: t, author: 'alice', mode: 'warn', bytes: 412 },
        { version: 1, rev: 4, time: t, author: 'alice', mode: 'enforce', bytes: 40 },
      ],
    }, plain);
    assert.equal(text, [
      'v3  rev 12  2026-01-02T03:04:05Z  deleted  by bob',
      'v2  rev 9  2026-01-02T03:04:05Z  warn  by alice  412 B',
      'v1  rev 4  2026-01-02T03:04:05Z  enforce  by alice  40 B',
    ].join('\n'));
    assert.equal(formatResult({ op: 'schema.history', envPattern: 'a', keyPattern: 'b' }, { versions: [] }, plain), '(no history)');
  });

  test('schema set, del and rollback: what they did', () => {
    const id = { envPattern: 'prod/*', keyPattern: 'db.*', whole: false };
    const set = { op: 'schema.set' as const, envPattern: 'prod/*', keyPattern: 'db.*', schema: '{}' };
    assert.equal(formatResult(set, { ...id, version: 3, rev: 12, changed: 1, mode: 'enforce' }, plain), 'schema prod/* db.*: v3, enforce mode (revision 12)');
    assert.equal(formatResult(set, { ...id, version: 4, rev: 13, changed: 1, mode: 'warn', failing: 2 }, plain), 'schema prod/* db.*: v4, warn mode (revision 13); 2 keys fail it now');
    assert.equal(formatResult(set, { ...id, whole: true, version: 1, rev: 14, changed: 1, mode: 'warn', failing: 1 }, plain), 'schema prod/* db.* (whole): v1, warn mode (revision 14); 1 environment fails it now');
    assert.equal(formatResult(set, { ...id, version: 3, rev: 12, changed: 0, mode: 'enforce' }, plain), 'schema prod/* db.*: nothing changed (v3)');
    assert.equal(formatResult(set, { ...id, version: 3, rev: 12, changed: 1, replayed: true }, plain), 'schema prod/* db.*: this request id was applied before, as version 3 (revision 12); nothing was written now');
    assert.equal(formatResult({ op: 'schema.del', envPattern: 'prod/*', keyPattern: 'db.*' }, { ...id, version: 5, rev: 15, changed: 1, deleted: true }, plain), 'schema prod/* db.*: deleted (v5, revision 15)');
    assert.equal(formatResult({ op: 'schema.rollback', envPattern: 'prod/*', keyPattern: 'db.*', version: 2 }, { ...id, version: 6, rev: 16, changed: 1, mode: 'warn' }, plain), 'schema prod/* db.*: v6, the schema of v2 again, warn mode (revision 16)');
  });
});

describe('warnings and refusals', () => {
  test('a write\'s warnings: a warning: line each (violations.ts\'s), then how many more', () => {
    assert.deepEqual(warningLines({ env: 'prod/eu', rev: 5, changed: 1 }), []);
    assert.deepEqual(warningLines({ env: 'prod/eu', rev: 5, changed: 1, warnings: [violation(), violation({ key: 'db.url', path: '', keyword: 'type', message: 'must be string' })] }), [
      'warning: prod/eu db.pool.max must be <= 500 (schema prod/* db.* v3, /maximum)',
      'warning: prod/eu db.url must be string (schema prod/* db.* v3, /type)',
    ]);
    assert.deepEqual(warningLines({ env: 'prod/eu', rev: 5, changed: 1, warnings: [violation()], warningsMore: 7 }), [
      'warning: prod/eu db.pool.max must be <= 500 (schema prod/* db.* v3, /maximum)',
      '… and 7 more',
    ]);
    // A schema set in warn mode: the keys that fail it count the rest.
    assert.deepEqual(warningLines({ envPattern: 'prod/*', keyPattern: 'db.*', whole: false, version: 1, rev: 3, changed: 1, mode: 'warn', failing: 3, warnings: [violation()] }).at(-1), '… and 2 more');
    // Escaped: what a server sent is never acted on by the terminal.
    assert.deepEqual(warningLines({ env: 'e', rev: 1, changed: 1, warnings: [violation({ message: 'bad \u001b[2J' })] }), [
      'warning: prod/eu db.pool.max bad \\u001b[2J (schema prod/* db.* v3, /maximum)',
    ]);
  });

  const message = 'not applied: 23 schema violations\nrefused: prod/eu db.pool.max must be <= 500 (schema prod/* db.* v3, /maximum)\n… and 22 more';
  const refusal = new RemoteError(WireError.SCHEMA_VIOLATION, message, undefined, { violations: [violation()], more: 22 });

  test('a refusal: the server\'s lines, escaped; the REPL prints them as its error', () => {
    assert.equal(isSchemaRefusal(refusal), true);
    assert.equal(isSchemaRefusal(new RemoteError(WireError.INVALID_VALUE, 'bad')), false);
    assert.equal(isSchemaRefusal(new VitefaError('E_USAGE', 'x')), false);
    assert.deepEqual(refusalLines(refusal), message.split('\n'));
    assert.equal(describeError(refusal), message);
    // A message of one line is followed by the violations the error carries.
    const bare = new RemoteError(WireError.SCHEMA_VIOLATION, 'not applied: 2 schema violations', undefined, { violations: [violation({ key: 'k\u0007' })], more: 1 });
    assert.deepEqual(refusalLines(bare), [
      'not applied: 2 schema violations', 'refused: prod/eu k\\u0007.max must be <= 500 (schema prod/* db.* v3, /maximum)', '… and 1 more',
    ]);
    assert.equal(refusal.code, 'E_REMOTE_SCHEMA_VIOLATION');
  });

  test('a refusal with --json: the error with its violations and more', () => {
    assert.deepEqual(JSON.parse(refusalJson(refusal)), {
      code: 'E_REMOTE_SCHEMA_VIOLATION', status: 209, message,
      violations: [{ env: 'prod/eu', key: 'db.pool', path: '/max', keyword: 'maximum', message: 'must be <= 500', schema: 'prod/* db.*', version: 3 }],
      more: 22,
    });
    const none = JSON.parse(refusalJson(new RemoteError(WireError.SCHEMA_VIOLATION, 'not applied: 1 schema violation'))) as Record<string, unknown>;
    assert.deepEqual(none, { code: 'E_REMOTE_SCHEMA_VIOLATION', status: 209, message: 'not applied: 1 schema violation', violations: [] });
  });

  test('a schema write whose answer was lost names schema history and its request id', () => {
    const lost = unanswered({ op: 'schema.set', envPattern: 'prod/*', keyPattern: 'db.*', schema: '{}', whole: true },
      new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, 'schema.set got no answer within 30000 ms'), 'rid-9');
    assert.match(lost?.message ?? '', /may or may not have been applied; `schema history prod\/\* db\.\* --whole` shows it if it was; running it again with --request-id rid-9 applies it once$/);
  });
});

describe('status', () => {
  const status: StatusResult = {
    server: { id: 's1', version: '1', listen: '127.0.0.1:7400', store: 'lmdb', uptimeMs: 1000, workers: 1, counters: {} },
    envs: [], agentsTotal: 0, agents: [], cluster: { head: 0, servers: [], envs: [] },
  };

  test('a line per schema in warn mode that something fails; none without', () => {
    const text = formatResult({ op: 'status' }, { ...status, schemaWarnings: [{ schema: 'prod/* db.*', version: 3, failing: 4 }, { schema: 'prod/* * (whole)', version: 1, failing: 1 }] }, 'text');
    assert.match(text, /\n\nschema warnings: prod\/\* db\.\* v3: 4 keys fail \(warn mode\)\nschema warnings: prod\/\* \* \(whole\) v1: 1 environment fails \(warn mode\)\n/);
    assert.doesNotMatch(formatResult({ op: 'status' }, status, 'text'), /schema warnings/);
    assert.deepEqual(schemaWarningLines([{ schema: 'a b', version: 2, failing: 1 }]), ['schema warnings: a b v2: 1 key fails (warn mode)']);
  });
});

/**
 * An invalid value is refused by key and position, never by its text: a
 * value may be a password, and the error goes to the client, the audit and
 * logs. The same for the admin's own checks of a merge value or an apply file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareCommand, readApplyFile } from '../../src/admin/commands.js';
import { jsonFault, jsonFaultText } from '../../src/json-syntax.js';
import { LocalErrorCode, WireError, type ResultOf, type VitefaError } from '../../src/protocol/index.js';
import { resolveLimits } from '../../src/server/limits.js';
import { planEntries } from '../../src/server/ops/validate.js';
import { chance, int, mulberry32, pick } from '../support/fuzz.js';
import { memoryServer, type MemoryServer } from '../support/servers.js';
import { tempDir } from '../support/common.js';

const SECRET = 'Sup3r-S3cret-DB-Passw0rd';
/** Any run of 6 characters of the secret: JSON.parse quotes 10 of them ("Sup3r-S3cr"...). */
const leaks = (text: string): boolean => [...Array(SECRET.length - 5).keys()].some((i) => text.includes(SECRET.slice(i, i + 6)));
/** How a refusal of text that opens as JSON says to store it as a string. */
const AS_A_STRING = `to store such text as a string, give it as a JSON string, e.g. '"{\\"a\\":1"'`;

describe('the server', () => {
  let mem: MemoryServer;
  const admin = { account: 'admin', addr: '10.0.0.1:1' };
  before(async () => {
    mem = await memoryServer();
    await mem.server.hub.execute({ op: 'env.add', env: 'prod' }, 'admin');
  });
  after(() => mem.close());

  test('the reproduction: a raw set of a value that is not JSON names the key and the position, in the error and in the audit', async () => {
    const bad = [SECRET, `{"password": ${SECRET}}`, `["${SECRET}`, `{"password": "${SECRET}" "x"}`];
    for (const value of bad) {
      await assert.rejects(mem.server.access.execute({ op: 'set', env: 'prod', key: 'db_password', value }, admin), (err: Error & { status?: number }) => {
        assert.equal(err.status, WireError.INVALID_VALUE);
        assert.match(err.message, /^db_password: not valid JSON at character \d+ \(expected [^)]+\)$/);
        assert.ok(!leaks(err.message), err.message);
        assert.equal(err.cause, undefined, 'no parser error rides along as a cause');
        return true;
      });
      await assert.rejects(mem.server.access.execute({ op: 'merge', env: 'prod', key: 'db', value }, admin), (err: Error) => !leaks(err.message));
    }
    const { entries } = await mem.server.access.execute({ op: 'audit', env: 'prod' }, admin) as ResultOf['audit'];
    const refused = entries.filter((e) => e.result === 'refused');
    assert.equal(refused.length, 2 * bad.length);
    for (const e of refused) {
      assert.ok(!leaks(e.detail), e.detail);
      assert.match(e.detail, /^key (db_password|db): \1: not valid JSON at character/);
    }
  });

  test('an apply names the key of the first bad value, not its text', () => {
    const result = planEntries([['ok', '1'], ['api_key', `sk-${SECRET}`]], resolveLimits());
    assert.ok('message' in result);
    assert.equal(result.message, 'api_key: not valid JSON at character 1 (expected a value)');
  });

  test('clear\'s last path word may be a value: the audit records the words before it only', async () => {
    await mem.server.hub.execute({ op: 'set', env: 'prod', key: 'keys', value: JSON.stringify({ live: [SECRET, 'other'] }) }, 'admin');
    await mem.server.access.execute({ op: 'clear', env: 'prod', key: 'keys', path: ['live', SECRET] }, admin);
    const { entries } = await mem.server.access.execute({ op: 'audit', env: 'prod', limit: 1 }, admin) as ResultOf['audit'];
    assert.equal(entries[0]?.action, 'clear');
    assert.equal(entries[0]?.detail, 'key keys path live, removing what the last path word names (not recorded)');
  });
});

describe('the admin tool\'s own checks', () => {
  const io = { account: 'admin', passwordIterations: 4096, newPassword: () => Promise.resolve('unused-password') };

  test('a merge value that is not JSON: the position, not the text', async () => {
    await assert.rejects(prepareCommand(['merge', 'prod', 'db', `{"password": ${SECRET}}`], io), (err: Error) => {
      assert.equal(err.message, `merge value is not valid JSON at character 14 (expected a value); ${AS_A_STRING}`);
      return true;
    });
    await assert.rejects(prepareCommand(['merge', 'prod', 'db', 'plain'], io), (err: Error) => {
      assert.equal(err.message, 'merge value is not valid JSON at character 1 (expected a value)');
      return true;
    });
  });

  test('a set VALUE that opens as JSON does but does not parse is refused (usage) by position, never stored as a string', async () => {
    const cases: [string, string][] = [
      ['{"a":1', "at character 7 (expected ',' or '}')"],
      ['[1, 2', "at character 6 (expected ',' or ']')"],
      ['"unclosed', 'at character 10 (expected the closing " of a string)'],
      [' \t{a: 1}', 'at character 4 (expected a property name in double quotes)'],
      [`{"password": ${SECRET}}`, 'at character 14 (expected a value)'],
      [`"${SECRET}" and more`, 'at character 28 (expected the end of the text (one value only))'],
      ['{"a":\n 1,\n}', 'at line 3, column 1 (expected a property name in double quotes)'],
    ];
    for (const [value, where] of cases) {
      for (const words of [['set', 'prod', 'k', value], ['set', 'k', value]]) {
        await assert.rejects(prepareCommand(words, io, words.length === 3 ? 'prod' : undefined), (err: VitefaError) => {
          assert.equal(err.code, LocalErrorCode.USAGE);
          assert.equal(err.message, `value is not valid JSON ${where}; ${AS_A_STRING}`);
          assert.ok(!leaks(err.message), err.message);
          return true;
        }, JSON.stringify(value));
      }
    }
  });

  test('set: JSON as typed, plain text as a string, and text that opens as JSON stored as a string when given as one', async () => {
    const stored = async (value: string): Promise<string> => {
      const { request } = await prepareCommand(['set', 'prod', 'k', value], io);
      assert.equal(request.op, 'set');
      return request.op === 'set' ? request.value : '';
    };
    assert.equal(await stored('{"a":1}'), '{"a":1}');
    assert.equal(await stored(' [1, 2] '), ' [1, 2] ');
    assert.equal(await stored('"hello"'), '"hello"');
    assert.equal(await stored('2'), '2');
    for (const plain of ['hello world', SECRET, 'a{"b":1', '}', ']', '-', 'tru', '']) assert.equal(await stored(plain), JSON.stringify(plain));
    // What the refusal says to type: '"{\"a\":1"' in a shell is the JSON string below.
    assert.equal(JSON.parse(await stored('"{\\"a\\":1"')), '{"a":1');
  });

  test('an apply file that is not JSON: the line and column, not the text', () => {
    const dir = tempDir('vitefa-value-errors-');
    try {
      const file = path.join(dir, 'prod.json');
      fs.writeFileSync(file, `{\n  "host": "db",\n  "password": ${SECRET}\n}\n`);
      assert.throws(() => readApplyFile(file), (err: Error) => {
        assert.equal(err.message, `${file} is not valid JSON at line 3, column 15 (expected a value)`);
        return true;
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('finding the fault of JSON text', () => {
  test('valid exactly when JSON.parse says so, over seeded random text near JSON', () => {
    const rng = mulberry32(18);
    const pieces = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', '9', 'e', 'E', '-', '+', '.', ' ', '\n', '\t', 'true', 'false', 'null', 'a', 'F', '\u0001', '\u00e9', '"k":', '\\u00e9', '\\n'];
    for (let n = 0; n < 50_000; n++) {
      let text = '';
      const length = int(rng, 12);
      for (let i = 0; i < length; i++) text += pick(rng, pieces);
      if (chance(rng, 0.2)) text = JSON.stringify({ a: [1, 'x', { b: null }] }).slice(0, int(rng, 24));
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      const fault = jsonFault(text);
      assert.equal(fault === undefined, valid, `${JSON.stringify(text)}: ${JSON.stringify(fault)}`);
      if (fault !== undefined) assert.ok(fault.at >= 0 && fault.at <= text.length);
    }
  });

  test('deep nesting costs its length, not the stack', () => {
    assert.equal(jsonFault(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`), undefined);
    assert.equal(jsonFaultText(`${'['.repeat(1_000_000)}1`), 'at character 1000002 (expected \',\' or \']\')');
  });
});

/**
 * Keeps docs/protocol.md and src/protocol in step, both ways: every message
 * type, every field of every message, every admin request's arguments, and
 * every map inside a message or a result that the document describes exists
 * in the checkers the decoder uses (src/protocol/checkers.ts), required or
 * optional as documented, and the other way round. A client written from the
 * document alone therefore sends and expects what the server does.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageType, PROTOCOL_VERSION } from '../../src/protocol/index.js';
import { MESSAGE_CHECKERS, NAMED_SHAPES, REQUEST_CHECKERS, RESULT_CHECKERS } from '../../src/protocol/checkers.js';
import type { Fields } from '../../src/protocol/check.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');
const lines = doc.split(/\r?\n/).map((l) => l.trim());

/** The cells of a table row, `\|` kept inside a cell. */
function cells(line: string): string[] {
  return line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim());
}

/** The lines of the section under `heading` (a whole line), up to the next heading of the same or a higher level. */
function section(heading: string): string[] {
  const start = lines.indexOf(heading);
  assert.notEqual(start, -1, `heading "${heading}" is missing`);
  const level = /^#+/.exec(heading)![0].length;
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && /^#+/.exec(l)![0].length <= level);
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/**
 * The fields of the `| Field | Type | Meaning |` table right under a heading
 * (before any deeper heading): name → required or optional, by the word
 * "optional" in the Type cell. Undefined when there is no such table.
 */
function fieldTable(body: string[]): Fields | undefined {
  const head = body.findIndex((l) => /^\|\s*Field\s*\|\s*Type\s*\|\s*Meaning\s*\|$/.test(l));
  const deeper = body.findIndex((l) => /^#+ /.test(l));
  if (head === -1 || (deeper !== -1 && deeper < head)) return undefined;
  const out: Record<string, 'required' | 'optional'> = {};
  for (const line of body.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const [name, type] = cells(line);
    const m = /^`(\w+)`$/.exec(name ?? '');
    assert.ok(m, `field cell "${name}" is not one backticked name`);
    assert.equal(out[m[1]], undefined, `field ${m[1]} listed twice`);
    out[m[1]] = /\boptional\b/.test(type ?? '') ? 'optional' : 'required';
  }
  return out;
}

/** Every heading of the document: its level-less text and the lines under it. */
const headings = lines.flatMap((l, i) => (/^#{2,4} /.test(l) ? [{ text: l.replace(/^#+ /, ''), heading: l, index: i }] : []));

describe('docs/protocol.md and src/protocol', () => {
  test('the protocol version is the one the code speaks, wherever the document gives it', () => {
    assert.match(doc, new RegExp(`Protocol version: \\*\\*${PROTOCOL_VERSION}\\*\\*`));
    const versions = [...doc.matchAll(/\bv: (\d+)/g)].map((m) => Number(m[1]));
    assert.ok(versions.length > 0, 'no Hello example with its v');
    assert.deepEqual([...new Set(versions)], [PROTOCOL_VERSION], 'every `v: N` in an example');
    const helloV = fieldTable(section(headings.find((h) => h.text.startsWith(`${MessageType.Hello} Hello`))!.heading));
    assert.ok(helloV?.v);
    assert.match(lines.find((l) => l.startsWith('| `v` |'))!, new RegExp(`\\(${PROTOCOL_VERSION}\\)`));
  });

  const messageHeadings = headings.filter((h) => /^\d+ \w+/.test(h.text));
  test('one section per message type, named and numbered as MessageType', () => {
    const documented = messageHeadings.map((h) => /^(\d+) (\w+)/.exec(h.text)!.slice(1, 3).join(' '));
    const actual = Object.entries(MessageType).map(([name, t]) => `${t} ${name}`);
    assert.deepEqual([...documented].sort(), [...actual].sort());
  });

  for (const [name, t] of Object.entries(MessageType)) {
    test(`message ${t} ${name}: the documented fields are the decoder's`, () => {
      const heading = messageHeadings.find((h) => h.text.startsWith(`${t} ${name}`));
      assert.ok(heading, `no section "${t} ${name}"`);
      const documented = fieldTable(section(heading.heading));
      assert.ok(documented, `no field table under "${heading.heading}"`);
      assert.deepEqual(documented, MESSAGE_CHECKERS[t].fields);
    });
  }

  const shapeHeadings = headings.filter((h) => /^[A-Z]\w*$/.test(h.text) && fieldTable(section(h.heading)) !== undefined);
  test('the maps described are exactly the named maps of checkers.ts', () => {
    const documented = shapeHeadings.map((h) => h.text);
    assert.deepEqual(documented.filter((n, i) => documented.indexOf(n) !== i), [], 'described twice');
    assert.deepEqual([...documented].sort(), Object.keys(NAMED_SHAPES).sort());
  });

  for (const [name, check] of Object.entries(NAMED_SHAPES)) {
    test(`map ${name}: the documented fields are the checker's`, () => {
      const heading = shapeHeadings.find((h) => h.text === name);
      assert.ok(heading, `no section "${name}" with a field table`);
      assert.deepEqual(fieldTable(section(heading.heading)), check.fields);
    });
  }

  /** The admin request table: op → its arguments (required or optional) and the name of its result type. */
  const requests = new Map<string, { args: Fields; result: string }>();
  for (const line of section('## Admin requests')) {
    if (!line.startsWith('| `')) continue;
    const [opCell, argCell, resultCell] = cells(line);
    const op = /^`([a-z.]+)`$/.exec(opCell)?.[1];
    if (op === undefined || resultCell === 'Result') continue; // the header row
    const names = [...argCell.matchAll(/`(\w+)`/g)];
    const args: Record<string, 'required' | 'optional'> = {};
    names.forEach((m, i) => {
      const upTo = names[i + 1]?.index ?? argCell.length;
      args[m[1]] = argCell.slice(m.index, upTo).includes('*optional*') ? 'optional' : 'required';
    });
    assert.ok(!requests.has(op), `${op} listed twice`);
    requests.set(op, { args, result: resultCell });
  }

  test('the admin request table lists exactly the operations the decoder takes', () => {
    assert.deepEqual([...requests.keys()].sort(), Object.keys(REQUEST_CHECKERS).sort());
  });

  for (const op of Object.keys(REQUEST_CHECKERS) as (keyof typeof REQUEST_CHECKERS)[]) {
    test(`request ${op}: its arguments and its result type are the checkers'`, () => {
      const row = requests.get(op);
      assert.ok(row, `no row for ${op}`);
      assert.deepEqual(row.args, REQUEST_CHECKERS[op].fields, `the arguments of ${op}`);
      const named = (NAMED_SHAPES as Record<string, unknown>)[row.result];
      assert.ok(named !== undefined, `${op}: the result type "${row.result}" is not described`);
      assert.equal(named, RESULT_CHECKERS[op], `${op} answers a ${row.result}`);
    });
  }
});

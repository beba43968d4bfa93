/**
 * The server's folders stack: a folder imports only from folders below it
 * (and from outside the server), no import forms a cycle, no source file is
 * over 450 lines, and the reader package imports nothing from the agent.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = path.join(ROOT, 'src');

/** The server's folders, lowest first. Files directly in src/server (errors, limits) are below all of them. */
const LAYERS = ['model', 'store', 'releases', 'ops', 'access', 'push', 'edge', 'peers', 'process'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The project files `file` imports (static, dynamic and type imports), as absolute .ts paths. */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push(path.resolve(path.dirname(file), m[1]).replace(/\.js$/, '.ts'));
  }
  return out;
}

/** The layer of a server file: -1 for files directly in src/server, undefined outside the server. */
function layer(file: string): number | undefined {
  const rel = path.relative(path.join(SRC, 'server'), file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(path.sep);
  if (parts.length === 1) return -1;
  const at = LAYERS.indexOf(parts[0]);
  assert.ok(at >= 0, `src/server/${parts[0]} is a folder the layer list does not name`);
  return at;
}

const rel = (file: string) => path.relative(ROOT, file);

describe('the layout of the source', () => {
  const files = sources(SRC);

  test('a server folder imports only from folders below it', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layer(file);
      if (from === undefined) continue;
      for (const target of imports(file)) {
        const to = layer(target);
        if (to === undefined) continue;
        if (to > from) wrong.push(`${rel(file)} -> ${rel(target)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('no import forms a cycle', () => {
    const graph = new Map(files.map((f) => [f, imports(f).filter((t) => t.startsWith(SRC))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map(rel).join(' -> '));
        return;
      }
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) visit(t);
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) visit(f);
    assert.deepEqual(cycles, []);
  });

  test('no source file is over 450 lines', () => {
    const long = files.map((f) => [rel(f), fs.readFileSync(f, 'utf8').split('\n').length - 1] as const).filter(([, n]) => n > 450);
    assert.deepEqual(long, []);
  });

  test('the reader package imports nothing from the agent', () => {
    const reader = files.filter((f) => f.startsWith(path.join(SRC, 'reader') + path.sep));
    const seen = new Set<string>();
    const reach = (f: string) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const t of imports(f)) if (t.startsWith(SRC)) reach(t);
    };
    reader.forEach(reach);
    assert.deepEqual([...seen].filter((f) => !f.startsWith(path.join(SRC, 'reader') + path.sep) && !f.startsWith(path.join(SRC, 'protocol'))).map(rel).filter((f) => f.startsWith('src/agent') || f.startsWith('src/server')), []);
  });
});

#!/usr/bin/env node
// Rebuilds the lmdb native module for LMDB's 0.9 data format (LMDB_DATA_V1),
// so the agent's store can be opened by liblmdb and other languages' LMDB
// bindings (the prebuilt binaries write a newer, incompatible format).
// Skips the build when node_modules/lmdb already holds a v1 build of the
// installed version. Needs python3, make and a C++ compiler (node-gyp).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// lmdb's exports hide package.json: find its folder from the main entry.
let lmdbDir = path.dirname(require.resolve('lmdb'));
while (!fs.existsSync(path.join(lmdbDir, 'package.json'))) lmdbDir = path.dirname(lmdbDir);
const { version } = JSON.parse(fs.readFileSync(path.join(lmdbDir, 'package.json'), 'utf8'));
const marker = path.join(lmdbDir, 'build', 'vitefa-data-v1');
const binary = path.join(lmdbDir, 'build', 'Release', 'lmdb.node');
const wanted = `${version} ${process.version}`;

if (fs.existsSync(binary) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === wanted) {
  console.log(`lmdb ${version}: data format v1 build present`);
  process.exit(0);
}

function nodeGyp() {
  // npm ships node-gyp; prefer the one beside the running npm.
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (fs.existsSync(c)) return c;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    throw new Error('node-gyp not found (it ships with npm); cannot build lmdb for data format v1');
  }
}

console.log(`lmdb ${version}: building the native module for LMDB data format v1 (about half a minute)`);
const args = [nodeGyp(), 'rebuild'];
const nodedir = process.env.npm_config_nodedir;
if (nodedir) args.push(`--nodedir=${nodedir}`);
const build = spawnSync(process.execPath, args, {
  cwd: lmdbDir,
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
  env: { ...process.env, LMDB_DATA_V1: 'true' },
});
if (build.status !== 0) {
  const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
  console.error(`${output}\nlmdb data format v1 build failed (exit ${build.status ?? build.signal}); it needs python3, make and a C++ compiler`);
  process.exit(1);
}
fs.writeFileSync(marker, wanted);
console.log(`lmdb ${version}: data format v1 build done`);

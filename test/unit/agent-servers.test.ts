/**
 * Which server an agent tries next: the pure choice over what it knows.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pickServer, type KnownServer } from '../../src/agent/servers.js';

const server = (port: number, state: string, agents = -1): KnownServer => ({ endpoint: { host: '127.0.0.1', port }, agents, state, configured: false });

describe('pickServer', () => {
  test('prefers alive servers to suspect, unlisted and unreachable ones, and avoids the one just left', () => {
    const servers = [server(1, 'alive', 10), server(2, 'unreachable'), server(3, 'suspect'), server(4, 'alive', 10)];
    for (const r of [0, 0.3, 0.7, 0.999]) assert.equal(pickServer(servers, '127.0.0.1:1', r).endpoint.port, 4);
    assert.equal(pickServer([server(1, 'alive'), server(3, 'suspect')], '127.0.0.1:1', 0.5).endpoint.port, 3);
    assert.equal(pickServer([server(1, 'alive'), server(2, 'unreachable'), server(5, 'unlisted')], '127.0.0.1:1', 0.5).endpoint.port, 5);
    assert.equal(pickServer([server(1, 'alive'), server(2, 'unreachable')], '127.0.0.1:1', 0.5).endpoint.port, 2);
    assert.equal(pickServer([server(1, 'alive')], '127.0.0.1:1', 0.5).endpoint.port, 1);
  });

  test('weighs by how few agents a server holds', () => {
    // Weights 1/(0+50) and 1/(100+50): the empty server takes three quarters of the draws.
    const servers = [server(1, 'alive', 0), server(2, 'alive', 100)];
    assert.equal(pickServer(servers, undefined, 0.74).endpoint.port, 1);
    assert.equal(pickServer(servers, undefined, 0.76).endpoint.port, 2);
  });
});

#!/usr/bin/env node
import { Command, Option } from 'commander';
import { LocalErrorCode, RemoteError, VitefaError, WireError } from './protocol/index.js';
import { helpText } from './admin/commands.js';
import { printable } from './printable.js';
import { VERSION } from './version.js';
// Types only: each command still loads its module when it runs.
import type { AdminFlags } from './admin/main.js';
import type { AgentFlags } from './agent/main.js';
import type { ReadFlags } from './reader/main.js';
import type { ServerFlags } from './server/process/config.js';
import type { StartFlags } from './start.js';

/**
 * The one executable: `vitefa server|agent|admin|read|start`. Each command
 * loads only what it needs. Errors print one line; the exit code is 2 for
 * usage errors, 3 for a write whose outcome is unknown (it may or may not
 * have been applied), and 1 for every other failure, which for a write means
 * it was not applied. A server also exits with 4 (EXIT_CHAIN_BROKEN in
 * server/process/main.ts) when its history and the store's disagree, and with
 * 130 when a second signal cuts its stop short.
 */
const program = new Command('vitefa')
  .description('vitefa-config: configuration pushed from config servers to an LMDB store on every host')
  .version(VERSION)
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) })
  .exitOverride()
  // Options after a subcommand's first word are that subcommand's to read (`admin audit --user U` filters by U).
  .enablePositionalOptions();

program
  .command('server')
  .description('run a config server')
  .option('--listen <host:port>', 'address for agents and admins (default 127.0.0.1:7400)')
  .option('--store <dir|mysql-url>', 'embedded LMDB folder or mysql://user:pass@host:port/db (default ./data/server)')
  .option('--config <file>', 'JSON configuration file')
  .option('--workers <n>', 'worker processes holding agent connections')
  .option('--max-agents <n>', 'agent connections to hold (sets the worker count with --workers)')
  .option('--peers <host:port,...>', "peer ports of other servers to join through (MySQL; the others are found in the database)")
  .option('--admin-listen <host:port>', 'an admin port, served by the process that commits, away from the agents\' fan-out (default: none; admins use --listen)')
  .option('--peer-listen <host:port>', 'the peer port, where other servers connect (MySQL; default: the listen port + 1)')
  .option('--peer-advertise <host:port>', 'where other servers reach the peer port, when not the address it binds')
  .option('--advertise <host:port,...>', 'addresses agents are told to use for this server, when not the listen addresses')
  .option('--server-id <id>', "this server's id, kept across restarts (default: host name and listen address)")
  .option('--history <n>', 'releases kept per environment')
  .option('--poll-ms <n>', 'how often to read releases other servers committed from the database, behind gossip (MySQL; default 5000)')
  .option('--migrate-only', 'create or upgrade the database schema, then exit')
  .option('--adopt-store', 'make this store a store of its own (a restored copy becoming the new production): a new store id, the registry emptied of other servers, a new peer key; audited (docs/operations.md)')
  .option('--tls-cert <file>', 'serve TLS with this certificate (PEM); SIGHUP reloads it')
  .option('--tls-key <file>', 'key of the certificate (PEM)')
  .option('--tls-client-ca <file>', 'require client certificates signed by this authority (mutual TLS)')
  .action(async (opts: ServerFlags) => (await import('./server/process/main.js')).runServer(opts));

program
  .command('agent')
  .description('run a host agent writing into the local store')
  .option('--servers <host:port,...>', 'servers to start from, not an order of preference (default 127.0.0.1:7400): with the servers the cluster announces (kept in the store for the next start), each connection goes to one chosen at random among the alive ones, weighted toward those holding fewer agents')
  .option('--env <name...>', 'environments to follow (default: all)')
  .option('--id <name>', "this agent's id in status (default: the host name; also VITEFA_AGENT_ID)")
  .option('--store <dir>', 'local store folder (default ./data/agent)')
  .option('--map-size <bytes>', 'initial size of the store map')
  .option('--token-file <file>', 'the agent token (or VITEFA_AGENT_TOKEN); an admin makes one with: token add NAME ENV…')
  .option('--tls-ca <file>', 'verify the servers with this certificate authority (TLS)')
  .option('--tls-cert <file>', 'client certificate, for servers that require one')
  .option('--tls-key <file>', 'key of the client certificate')
  .action(async (opts: AgentFlags) => (await import('./agent/main.js')).runAgent(opts));

program
  .command('admin')
  .description('run one admin command, or the REPL when none is given')
  .option('--server <host:port,...>', 'servers to talk to, tried in order (or VITEFA_SERVER; default 127.0.0.1:7400); a write a stopping server refused, or whose connection was lost, goes to the next')
  .option('--user <name>', 'account to log in as (or VITEFA_USER; the password from VITEFA_PASSWORD, or asked)')
  .option('--login-file <file>', 'a login file {"user","password"} (default ./data/admin.login, as npm start writes it)')
  .option('--tls-ca <file>', 'verify the server with this certificate authority (TLS)')
  .option('--tls-cert <file>', 'client certificate, for servers that require one')
  .option('--tls-key <file>', 'key of the client certificate')
  .option('--request-id <id>', 'request id of a write (default: a new one): the same id given to two runs applies the write once')
  .argument('[command...]', 'e.g. set ENV KEY VALUE; help lists them all')
  .allowUnknownOption()
  .passThroughOptions()
  .helpOption('-h, --help')
  .addHelpText('after', () => `\n${helpText()}\n\nhelp COMMAND (e.g. vitefa admin help user add) says more about one command.`)
  .action(async (words: string[], opts: AdminFlags) => (await import('./admin/main.js')).runAdmin(words, opts));

program
  .command('read')
  .description("print a value (or an environment as JSON) from the agent's local store")
  .option('--store <dir>', 'local store folder (default ./data/agent)')
  .addOption(new Option('--json', 'print values as JSON even when they are strings'))
  .option('--raw', 'print the value exactly as stored (strings bare), control characters and all, for pipes; without it they show escaped')
  .option('--meta', "print the environment's revision and chain value held (and each layer's revision, for a layered one), instead of values")
  .argument('<env>')
  .argument('[key]')
  .action(async (env: string, key: string | undefined, opts: ReadFlags) => (await import('./reader/main.js')).runRead(env, key, opts));

program
  .command('start')
  .description('run a server and an agent on this machine with the embedded store (the quick start)')
  .option('--listen <host:port>', 'server address', '127.0.0.1:7400')
  .option('--data <dir>', 'folder for both stores', './data')
  .action(async (opts: StartFlags) => (await import('./start.js')).runStart(opts));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = exitFor(err);
}

function exitFor(err: unknown): number {
  const e = err as { code?: string; exitCode?: number; message?: string };
  if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
    return e.exitCode === 0 ? 0 : 2;
  }
  // One line, whatever the message quotes (a server's words, a name from a store): control characters escaped.
  process.stderr.write(`vitefa: ${printable(e.message ?? String(err))}\n`);
  if (err instanceof VitefaError && err.code === LocalErrorCode.USAGE) return 2;
  // A write that may or may not have been applied: distinct from a failure, which guarantees it was not.
  if ((err instanceof RemoteError && err.status === WireError.OUTCOME_UNKNOWN) || (err instanceof VitefaError && err.code === LocalErrorCode.OUTCOME_UNKNOWN)) return 3;
  if (!(err instanceof VitefaError || err instanceof RemoteError) && process.env.VITEFA_TRACE) {
    process.stderr.write(`${(err as Error).stack}\n`);
  }
  return 1;
}

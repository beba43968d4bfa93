/**
 * A flood of silent connections from one source address, in a process of
 * its own (as an attacker's machine would be): it keeps `count` connections
 * open to a port, sends nothing on them, and opens a new one for each that
 * the server closes. It reports on its standard output how many it opened.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const FLOODER = `
const net = require('node:net');
const [host, port, count, localAddress] = process.argv.slice(1);
let opened = 0;
let open = 0;
function one() {
  const socket = net.connect({ host, port: Number(port), localAddress });
  opened++;
  open++;
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  socket.once('close', () => {
    open--;
    // Reopened at once, but after this turn of the event loop (a connect refused at once must not recurse).
    setImmediate(one);
  });
}
for (let i = 0; i < Number(count); i++) one();
setInterval(() => process.stdout.write('opened ' + opened + ' open ' + open + '\\n'), 200);
`;

export class Flood {
  private readonly child: ChildProcess;
  private output = '';
  private readonly exited: Promise<void>;

  constructor(target: { host: string; port: number }, count: number, localAddress: string) {
    this.child = spawn(process.execPath, ['-e', FLOODER, target.host, String(target.port), String(count), localAddress], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-200);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  /** Connections opened so far (every reopening counted). */
  get opened(): number {
    const all = [...this.output.matchAll(/opened (\d+) open (\d+)/g)];
    return all.length === 0 ? 0 : Number(all[all.length - 1][1]);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { LocalErrorCode, VitefaError } from '../../../protocol/index.js';

/** One server per data folder: a pid file, taken over only when its process is gone. Returns its descriptor. */
export function takeLock(file: string): number {
  try {
    const fd = fs.openSync(file, 'wx');
    fs.writeSync(fd, String(process.pid));
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = Number(fs.readFileSync(file, 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new VitefaError(
        LocalErrorCode.STORE_REFUSED,
        `data folder ${path.dirname(file)} is in use by server process ${pid}`,
      );
    }
    fs.rmSync(file, { force: true });
    return takeLock(file);
  }
}

/** Gives the lock taken by takeLock back. */
export function releaseLock(file: string, fd: number): void {
  fs.closeSync(fd);
  fs.rmSync(file, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { LocalErrorCode, VitefaError } from '../protocol/index.js';

/**
 * Asks for a secret on the terminal without echoing it. Enter ends it,
 * Backspace takes back a character, Ctrl-C or Ctrl-D gives up. Off a
 * terminal it fails at once, naming `variable`, the environment variable
 * that gives the secret instead.
 */
export function askSecret(prompt: string, variable: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  if (input.isTTY !== true || typeof input.setRawMode !== 'function') {
    return Promise.reject(new VitefaError(LocalErrorCode.USAGE, `${prompt.replace(/:\s*$/, '')}: not on a terminal (give it in ${variable} instead)`));
  }
  return new Promise((resolve, reject) => {
    let secret = '';
    const wasRaw = input.isRaw;
    const finish = (err?: Error): void => {
      input.off('data', onData);
      input.setRawMode(wasRaw);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(secret);
    };
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || ch === '\u0004') return finish(new VitefaError(LocalErrorCode.USAGE, 'cancelled'));
        if (ch === '\u007f' || ch === '\b') secret = [...secret].slice(0, -1).join('');
        else if (ch >= ' ') secret += ch;
      }
    };
    output.write(prompt);
    input.setRawMode(true);
    input.resume();
    input.on('data', onData);
  });
}

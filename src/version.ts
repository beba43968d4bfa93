import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** This build's version, from package.json. */
export const VERSION: string = (() => {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      return (require(candidate) as { version: string }).version;
    } catch {
      // try the next layout (source vs compiled)
    }
  }
  return '0.0.0';
})();

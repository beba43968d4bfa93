import { WireError } from '../../protocol/index.js';
import { RequestError } from '../errors.js';

/** The refusals both stores give for accounts and tokens, worded the same. */
export const alreadyExists = (what: string, name: string): RequestError =>
  new RequestError(WireError.ALREADY_EXISTS, `${what} ${name} already exists`);

export const noSuchName = (what: string, name: string): RequestError =>
  new RequestError(WireError.NO_SUCH_NAME, `no ${what} named ${name}`);

export const lastAdmin = (name: string): RequestError =>
  new RequestError(WireError.NOT_APPLICABLE, `${name} is the last admin account: add another admin first`);

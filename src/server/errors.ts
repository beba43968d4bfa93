import { VitefaError, WireError, wireErrorName } from '../protocol/index.js';

/**
 * An error that answers an admin request: carries the wire status sent back
 * to the client. Thrown by stores and handlers alike.
 */
export class RequestError extends VitefaError {
  readonly status: WireError;
  constructor(status: WireError, message: string, options?: { cause?: unknown }) {
    super(`E_${wireErrorName(status) ?? status}`, message, options);
    this.status = status;
  }
}

export const envNotFound = (env: string): RequestError =>
  new RequestError(WireError.ENV_NOT_FOUND, `environment ${env} does not exist (create it with: env add ${env})`);

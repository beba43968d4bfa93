export { MessageType, WireError, Role, PROTOCOL_VERSION, wireErrorName } from './codes.js';
export { VitefaError, ProtocolError, RemoteError, LocalErrorCode } from './errors.js';
export { FrameDecoder, frame, FRAME_HEADER_BYTES, DEFAULT_MAX_FRAME_BYTES } from './frame.js';
export { encodeBody, encodeMessage, decodeBody, checkResult, SnapshotEncoder, snapshotMessage } from './codec.js';
export { chainOf, CHAIN_GENESIS, CHAIN_HEX } from './chain.js';
export type * from './messages.js';
export { REQUEST_ID } from './request-id.js';
export { CONTROL_CHARACTERS } from './text.js';
export { scanBody, DEFAULT_DECODE_LIMITS, MAX_DEPTH_LIMIT, type DecodeLimits } from './scan.js';

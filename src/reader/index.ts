export { ConfigReader, type LayerRevision, type WaitOptions } from './reader.js';
export { DEFAULT_AGENT_STORE, LAYOUT_FORMAT } from './layout.js';

export { MAX_PATTERN_BYTES, MAX_PATTERN_STARS, matcher, patternFault, type Matcher } from './patterns.js';
export { SCHEMA_ENV, schemaKey, schemaIdOf, recordText, recordOf, schemaName, type SchemaId, type SchemaRecord } from './records.js';
export { MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, CompiledCache, compileSchema, isGuarded, schemaFault, type CompiledSchema } from './compile.js';
export {
  activeSchema, coverageOf, itemBytes, itemsOf, runCheck, violationOf,
  type ActiveSchema, type CheckItem, type Found,
} from './check.js';

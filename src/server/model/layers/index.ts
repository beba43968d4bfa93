/**
 * Layered environments, the pure model: the merge order of an environment's parents and the
 * refusals of a parent list (parents.ts), merged views key by key (views.ts), and the provenance
 * of every leaf of a merged value (explain.ts). No store, no clock, no I/O.
 */
export {
  blockersOfDelete,
  checkParents,
  dependentsOf,
  flatten,
  MAX_CHAIN_DEPTH,
  MAX_PARENTS,
  type ParentCheck,
  type ParentMap,
  type ParentRefusal,
} from './parents.js';
export { changedKeys, mergedKey, mergedView, type Layer, type OwnEntry, type UnsetMark, type View } from './views.js';
export { explain, type ExplainedLeaf, type Explanation, type Hiding, type LeafPath } from './explain.js';
export { hasMarks, MARKED, ownDisplay, ownEntry, ownLayer, ownText } from './own.js';
export { mergedChanges, withParents, type LayerWrite, type OwnSource } from './changes.js';

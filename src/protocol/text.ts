/**
 * Characters a terminal may act on instead of showing: the C0 controls (ESC,
 * CR, LF, …), DEL, the C1 controls (U+0080–U+009F: CSI and OSC have
 * one-character forms there), the line and paragraph separators, and the
 * bidirectional embeddings, overrides and isolates, which reorder what
 * follows them on screen. Names that are shown to people hold none of them.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's job
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

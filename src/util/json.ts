import { NookError } from '../api/errors.js';

/** Deeper than any request nook defines; shallow enough that validators never exhaust the stack. */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses JSON from a network client. Refuses nesting deeper than `maxDepth` before parsing:
 * JSON.parse copes with deep input, but every recursive consumer after it (zod, the audit
 * digest, JSON.stringify) would overflow the stack and answer 500.
 */
export function parseUntrustedJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  const depth = jsonDepth(text, maxDepth);
  if (depth > maxDepth) {
    throw new NookError('INVALID_ARGUMENT', `the request body nests deeper than ${maxDepth} levels`, { hint: 'flatten the JSON body' });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new NookError('INVALID_ARGUMENT', 'the request body is not valid JSON', { hint: 'send a JSON object (content-type: application/json)' });
  }
}

/** Bracket depth of a JSON text (strings skipped), stopping as soon as it passes `stopAt`. */
export function jsonDepth(text: string, stopAt = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      depth++;
      if (depth > max) max = depth;
      if (max > stopAt) return max;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return max;
}

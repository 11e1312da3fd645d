/**
 * The daemon's checks on desktop input, before anything reaches a command line: points on
 * the screen, key combinations from a grammar with an allow-list of key names, and typed
 * text without control characters. Each failure is INVALID_ARGUMENT naming the field.
 */
import { NookError } from '../api/errors.js';

export interface Screen {
  width: number;
  height: number;
}

function invalid(path: string, message: string, hint: string): NookError {
  return new NookError('INVALID_ARGUMENT', message, { hint, context: { issues: [{ path, message }] } });
}

/** A point inside the screen (0-based, exclusive of width and height). */
export function checkPoint(screen: Screen, x: number, y: number, names: [string, string] = ['x', 'y']): void {
  if (x >= screen.width) throw invalid(names[0], `${names[0]} ${x} is off the screen: it is ${screen.width}x${screen.height}, so ${names[0]} goes from 0 to ${screen.width - 1}`, 'give a point inside the screen (nook desktop info NAME shows its size)');
  if (y >= screen.height) throw invalid(names[1], `${names[1]} ${y} is off the screen: it is ${screen.width}x${screen.height}, so ${names[1]} goes from 0 to ${screen.height - 1}`, 'give a point inside the screen (nook desktop info NAME shows its size)');
}

/** Modifiers by the names people use, to xdotool's. */
const MODIFIERS: Record<string, string> = { ctrl: 'ctrl', control: 'ctrl', alt: 'alt', option: 'alt', shift: 'shift', super: 'super', meta: 'super', cmd: 'super', win: 'super' };

/** Named keys (lower-cased alias -> X keysym). Letters, digits and F1..F24 are added below. */
const NAMED_KEYS: Record<string, string> = {
  return: 'Return', enter: 'Return', tab: 'Tab', escape: 'Escape', esc: 'Escape', backspace: 'BackSpace', delete: 'Delete', del: 'Delete',
  insert: 'Insert', home: 'Home', end: 'End', pageup: 'Page_Up', page_up: 'Page_Up', pagedown: 'Page_Down', page_down: 'Page_Down',
  up: 'Up', down: 'Down', left: 'Left', right: 'Right', space: 'space', menu: 'Menu', print: 'Print', pause: 'Pause',
  capslock: 'Caps_Lock', caps_lock: 'Caps_Lock',
  minus: 'minus', plus: 'plus', equal: 'equal', comma: 'comma', period: 'period', slash: 'slash', backslash: 'backslash',
  semicolon: 'semicolon', apostrophe: 'apostrophe', grave: 'grave', bracketleft: 'bracketleft', bracketright: 'bracketright',
  '-': 'minus', '+': 'plus', '=': 'equal', ',': 'comma', '.': 'period', '/': 'slash', '\\': 'backslash', ';': 'semicolon',
  "'": 'apostrophe', '`': 'grave', '[': 'bracketleft', ']': 'bracketright',
};

function keysym(name: string): string | undefined {
  if (/^[a-zA-Z0-9]$/.test(name)) return name;
  const f = /^f([1-9]|1[0-9]|2[0-4])$/i.exec(name);
  if (f) return `F${f[1]}`;
  return NAMED_KEYS[name.toLowerCase()];
}

/**
 * `ctrl+l`, `Return`, `alt+F4`, `ctrl+shift+t`, `ctrl++`: modifiers then one key, joined
 * by `+`. Answers xdotool's spelling; anything else is a clear error listing what is known.
 */
export function parseKeyCombo(combo: string): string {
  // A trailing "++" is the plus key itself.
  const parts = combo.endsWith('++') ? [...combo.slice(0, -2).split('+').filter((p, i, a) => p || i < a.length - 1), '+'] : combo.split('+');
  if (parts.some((p) => p === '')) throw invalid('keys', `"${printable(combo)}" is not a key combination: an empty part between "+"`, 'write modifiers then one key: ctrl+l, shift+Tab, Return');
  const key = parts[parts.length - 1] as string;
  const mods = parts.slice(0, -1).map((m) => {
    const mod = MODIFIERS[m.toLowerCase()];
    if (!mod) throw invalid('keys', `"${printable(m)}" is not a modifier`, `modifiers are ${Object.keys(MODIFIERS).join(', ')}`);
    return mod;
  });
  const sym = keysym(key) ?? MODIFIERS[key.toLowerCase()];
  if (!sym) {
    throw invalid('keys', `unknown key "${printable(key)}"`, 'keys are letters, digits, F1..F24 and Return, Tab, Escape, BackSpace, Delete, Insert, Home, End, Page_Up, Page_Down, Up, Down, Left, Right, space, Menu and punctuation names (minus, comma, slash...)');
  }
  return [...new Set(mods), sym].join('+');
}

/** Control characters a caller may not type: C0 except tab and newline, DEL, C1. */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/**
 * Typed text: printable characters, tabs and newlines (typed as Tab and Return). Other
 * control characters are refused, not escaped: an agent that sends them meant a key, and
 * `key` says which.
 */
export function checkText(text: string): string {
  const m = FORBIDDEN.exec(text);
  if (m) {
    const code = (m[0].codePointAt(0) ?? 0).toString(16).padStart(4, '0');
    throw invalid('text', `text holds the control character U+${code} at offset ${m.index}`, 'type printable text (tab and newline are typed as Tab and Return); send other keys with nook desktop key (e.g. ctrl+c)');
  }
  return text;
}

/** A string safe to quote in a message (control characters shown as \\uXXXX), bounded. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.slice(0, 40).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

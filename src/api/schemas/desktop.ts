/**
 * Desktop sandboxes: the agent's input actions and what it reads back. The schemas bound the
 * shape (integers, lengths); what depends on the sandbox (the screen size) and the key and
 * text grammar are checked by the daemon (src/core/desktop-input.ts) before any command line.
 */
import { z } from 'zod';
import { execFields } from './exec.js';

/** The largest screen a desktop sandbox may ask for (NOOK_DESKTOP_WIDTH/HEIGHT). */
export const DESKTOP_MAX = { width: 3840, height: 2160, min: 64 } as const;
/** Typed text: at most this many characters per call. */
export const DESKTOP_MAX_TEXT = 10_000;

const coord = z.number().int().min(0).max(100_000);
const button = z.enum(['left', 'middle', 'right']);

export const DesktopClickRequest = z.strictObject({ x: coord, y: coord, button: button.optional(), double: z.boolean().optional() });
export const DesktopMoveRequest = z.strictObject({ x: coord, y: coord });
export const DesktopDragRequest = z.strictObject({ fromX: coord, fromY: coord, toX: coord, toY: coord, button: button.optional() });
export const DesktopScrollRequest = z.strictObject({
  direction: z.enum(['up', 'down', 'left', 'right']),
  /** Wheel clicks. */
  amount: z.number().int().min(1).max(50).optional(),
  /** Where to scroll; absent: where the pointer is. */
  x: coord.optional(),
  y: coord.optional(),
});
export const DesktopTypeRequest = z.strictObject({ text: z.string().min(1).max(DESKTOP_MAX_TEXT) });
export const DesktopKeyRequest = z.strictObject({
  /** One combination: `ctrl+l`, `Return`, `alt+F4`, `shift+Tab`. */
  keys: z.string().min(1).max(100),
  repeat: z.number().int().min(1).max(100).optional(),
});
export const DesktopLaunchRequest = z.strictObject({ argv: execFields.argv, name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/i).optional() });
export const DesktopWaitIdleRequest = z.strictObject({
  /** The screen must stay unchanged this long. */
  quietMs: z.number().int().min(100).max(60_000).optional(),
  timeoutMs: z.number().int().min(100).max(120_000).optional(),
});
export const DesktopUrlRequest = z.strictObject({ control: z.boolean().optional() });

export const DesktopAction = z.object({
  receipt: z.string().optional(),
  ok: z.literal(true),
  action: z.string(),
  durationMs: z.number(),
});
export type DesktopAction = z.infer<typeof DesktopAction>;

export const DesktopCursor = z.object({ x: z.number().int(), y: z.number().int() });
export type DesktopCursor = z.infer<typeof DesktopCursor>;

export const DesktopWindow = z.object({ id: z.string(), title: z.string(), x: z.number().int(), y: z.number().int(), width: z.number().int(), height: z.number().int() });
export const DesktopWindowList = z.object({ windows: z.array(DesktopWindow) });
export type DesktopWindow = z.infer<typeof DesktopWindow>;

export const DesktopInfo = z.object({
  receipt: z.string().optional(),
  sandbox: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  display: z.string(),
  running: z.boolean(),
});
export type DesktopInfo = z.infer<typeof DesktopInfo>;

export const DesktopIdle = z.object({ receipt: z.string().optional(), idle: z.literal(true), waitedMs: z.number() });
export const DesktopUrl = z.object({ receipt: z.string().optional(), url: z.string(), control: z.boolean(), hostPort: z.number().int() });
export type DesktopUrl = z.infer<typeof DesktopUrl>;

import { routeRefs as routes } from '../../api/route-refs.js';
import type { DesktopCursor, DesktopInfo, DesktopUrl, DesktopWindow, Process } from '../../api/schemas.js';
import { toArgv, type Command } from '../exec.js';
import type { Api } from '../routes.js';

export type MouseButton = 'left' | 'middle' | 'right';
export interface DesktopActionResult {
  ok: true;
  action: string;
  durationMs: number;
  receipt?: string;
}

/**
 * A desktop sandbox's screen, driven by an agent: every call acts on the sandbox's own
 * display (the daemon runs the input inside the sandbox). `sandbox.desktop`.
 */
export class Desktop {
  constructor(
    private readonly api: Api,
    private readonly ref: () => string,
  ) {}

  info(): Promise<DesktopInfo> {
    return this.api.json(routes.desktopInfo, { ref: this.ref() });
  }

  /** The whole screen as PNG bytes. */
  screenshot(): Promise<Buffer> {
    return this.api.bytes(routes.desktopScreenshot, { ref: this.ref() });
  }

  click(x: number, y: number, options: { button?: MouseButton; double?: boolean } = {}): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopClick, { ref: this.ref() }, { body: { x, y, ...options } });
  }

  move(x: number, y: number): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopMove, { ref: this.ref() }, { body: { x, y } });
  }

  drag(from: [number, number], to: [number, number], options: { button?: MouseButton } = {}): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopDrag, { ref: this.ref() }, { body: { fromX: from[0], fromY: from[1], toX: to[0], toY: to[1], ...options } });
  }

  /** Wheel clicks in a direction, at x,y or where the pointer is. */
  scroll(direction: 'up' | 'down' | 'left' | 'right', options: { amount?: number; x?: number; y?: number } = {}): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopScroll, { ref: this.ref() }, { body: { direction, ...options } });
  }

  /** Printable text; tab and newline are typed as Tab and Return; other control characters are refused. */
  type(text: string): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopType, { ref: this.ref() }, { body: { text } });
  }

  /** One combination: `ctrl+l`, `Return`, `alt+F4`. */
  key(keys: string, options: { repeat?: number } = {}): Promise<DesktopActionResult> {
    return this.api.json(routes.desktopKey, { ref: this.ref() }, { body: { keys, ...options } });
  }

  cursor(): Promise<DesktopCursor> {
    return this.api.json(routes.desktopCursor, { ref: this.ref() });
  }

  async windows(): Promise<DesktopWindow[]> {
    return (await this.api.json(routes.desktopWindows, { ref: this.ref() })).windows;
  }

  /** A GUI program on the display, as a background process (see sandbox.processes). */
  launch(cmd: Command, options: { name?: string } = {}): Promise<Process> {
    return this.api.json(routes.desktopLaunch, { ref: this.ref() }, { body: { argv: toArgv(cmd), ...options } });
  }

  /** Resolves once the screen has not changed for quietMs; TimeoutError after timeoutMs. */
  waitIdle(options: { quietMs?: number; timeoutMs?: number } = {}): Promise<{ idle: true; waitedMs: number }> {
    return this.api.json(routes.desktopWaitIdle, { ref: this.ref() }, { body: options });
  }

  /** Ends and starts again the X server and its services (after a crash). */
  restart(): Promise<DesktopInfo> {
    return this.api.json(routes.desktopRestart, { ref: this.ref() });
  }

  /** A token-guarded noVNC link on the host loopback; view-only unless control. */
  url(options: { control?: boolean } = {}): Promise<DesktopUrl> {
    return this.api.json(routes.desktopUrl, { ref: this.ref() }, { body: options });
  }
}

/**
 * Desktop sandboxes: the display services run as the background process `desktop` (the
 * image's nook-desktop supervisor), started when compute comes up; every agent action runs
 * xdotool inside the sandbox through the runtime's exec (screenshots: socat to the image's
 * long-lived helper nook-grab, or the per-call tool when it is gone), with
 * DISPLAY set to the sandbox's own display, never on the host. Input is checked here
 * (desktop-input.ts) before it reaches a command line, and passed as argv, never via a shell.
 */
import { createHash } from 'node:crypto';
import { NookError } from '../api/errors.js';
import type { DesktopCursor, DesktopInfo, DesktopUrl, DesktopWindow, Process } from '../api/schemas.js';
import { DESKTOP_MAX } from '../api/schemas/desktop.js';
import { DESKTOP } from '../oci/desktop-image.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { log } from '../util/log.js';
import type { AuditLog } from './audit.js';
import { checkPoint, checkText, parseKeyCombo, type Screen } from './desktop-input.js';
import type { ImageManager } from './images.js';
import type { NetworkManager } from './network.js';
import type { ProcessManager } from './processes.js';
import type { SandboxRecord } from './sandbox-model.js';
import type { SandboxManager } from './sandboxes.js';

/** A screenshot larger than this is refused (a 3840x2160 PNG of noise is about 25 MiB). */
export const SCREENSHOT_MAX_BYTES = 32 * 1024 * 1024;
/** Output of any other desktop command (cursor, window list) read at most. */
const SMALL_OUTPUT_BYTES = 256 * 1024;
/** How long a freshly started desktop gets to bring its X server up. */
const READY_TIMEOUT_MS = 15_000;
const ACTION_TIMEOUT_MS = 10_000;
/** A screenshot from the helper takes tens of milliseconds; one that stalls this long is refused. */
const GRAB_TIMEOUT_MS = 5_000;
/** xdotool's pause between typed characters. */
const TYPE_DELAY_MS = 4;
const MAX_WINDOWS = 256;
const MAX_TITLE = 512;
const BUTTONS = { left: '1', middle: '2', right: '3' } as const;
const WHEEL = { up: '4', down: '5', left: '6', right: '7' } as const;

/** Words X clients print when there is no display to talk to. */
const NO_DISPLAY = /can't open display|cannot open display|unable to open display|connection refused|X server/i;

interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface DesktopDeps {
  sandboxes: SandboxManager;
  runtime: RuntimeDriver;
  processes: ProcessManager;
  network: NetworkManager;
  images: ImageManager;
  audit: AuditLog;
}

export class DesktopManager {
  /** Desktop processes whose X server answered once (no need to wait for it again). */
  private readonly ready = new Set<string>();

  constructor(private readonly d: DesktopDeps) {}

  // ---- which sandboxes, what screen ------------------------------------------------------

  isDesktop(sb: SandboxRecord): boolean {
    return sb.spec.labels['nook.template'] === 'desktop' || this.d.images.find(sb.imageId)?.source === 'preset:desktop';
  }

  /** The screen size the sandbox asked for (NOOK_DESKTOP_WIDTH/HEIGHT), default 1280x800. */
  screen(sb: SandboxRecord): Screen {
    const read = (name: string, fallback: number, max: number): number => {
      const raw = sb.spec.env[name];
      if (raw === undefined) return fallback;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < DESKTOP_MAX.min || n > max) {
        throw new NookError('INVALID_ARGUMENT', `${name}=${raw.slice(0, 20)} is not a screen size: give an integer from ${DESKTOP_MAX.min} to ${max}`, { hint: `create the sandbox with -e ${name}=...`, context: { issues: [{ path: `env.${name}`, message: 'not a screen size' }] } });
      }
      return n;
    };
    return { width: read('NOOK_DESKTOP_WIDTH', DESKTOP.defaultWidth, DESKTOP_MAX.width), height: read('NOOK_DESKTOP_HEIGHT', DESKTOP.defaultHeight, DESKTOP_MAX.height) };
  }

  private desktopOf(ref: string): SandboxRecord {
    const sb = this.d.sandboxes.record(ref);
    if (!this.isDesktop(sb)) {
      throw new NookError('INVALID_STATE', `sandbox ${sb.name} has no desktop`, { hint: 'create one from the desktop template: nook create --template desktop NAME' });
    }
    return sb;
  }

  private process(sb: SandboxRecord): Process | undefined {
    return this.d.processes.list(sb.id).filter((p) => p.name === DESKTOP.processName).pop();
  }

  private down(sb: SandboxRecord, why: string): NookError {
    return new NookError('DESKTOP_NOT_RUNNING', `the desktop of ${sb.name} is not running: ${why}`, { hint: `bring it back: nook desktop restart ${sb.name}`, context: { sandbox: sb.name } });
  }

  // ---- compute lifecycle -----------------------------------------------------------------

  /** Compute came up: start the desktop services (a failure is logged; restart retries). */
  async up(sandboxId: string): Promise<void> {
    const sb = this.d.sandboxes.record(sandboxId);
    if (!this.isDesktop(sb)) return;
    if (this.process(sb)?.state === 'running') return;
    await this.launchServices(sb).catch((e: Error) => log('desktop: services did not start', { id: sandboxId, error: e.message }));
  }

  /** Compute goes down: viewer links die with it (a new `desktop url` makes new ones). */
  async downHook(sandboxId: string): Promise<void> {
    const live = this.d.network.exposures(sandboxId).filter((e) => e.port === DESKTOP.viewPort || e.port === DESKTOP.controlPort);
    for (const e of live) await this.d.network.unexpose(sandboxId, e.port);
    // Their path entries go too (a dead token opens nothing anyway; this keeps the web root tidy).
    if (live.length) await Promise.resolve().then(() => this.serveLinks(this.d.sandboxes.record(sandboxId), 2000)).catch(() => undefined);
  }

  private async launchServices(sb: SandboxRecord): Promise<Process> {
    const screen = this.screen(sb);
    return this.d.processes.startIn(sb.id, {
      argv: ['/usr/local/bin/nook-desktop'],
      name: DESKTOP.processName,
      env: { NOOK_DESKTOP_WIDTH: String(screen.width), NOOK_DESKTOP_HEIGHT: String(screen.height), DISPLAY: DESKTOP.display },
    });
  }

  /** Ends the desktop's process tree (whatever is left of it) and starts it again. */
  async restart(ref: string): Promise<DesktopInfo> {
    const sb = this.desktopOf(ref);
    await this.d.sandboxes.ensureRunning(sb.id);
    const p = this.process(sb);
    if (p?.state === 'running') await this.d.processes.kill(sb.id, p.id, 'SIGKILL');
    // An X server a crashed supervisor left behind would hold the display: ended too.
    // (bin/[n]ook-grab$: the helper's command line, not this shell's, which names its socket too.)
    await this.run(sb, ['sh', '-c', `pkill -KILL -x Xvfb; pkill -KILL -x x11vnc; pkill -KILL -f websockify; pkill -KILL -f 'bin/[n]ook-grab$'; rm -f /tmp/.X0-lock /tmp/.X11-unix/X0 ${DESKTOP.grabSocket}; true`], { raw: true });
    const started = await this.launchServices(sb);
    await this.waitReady(sb, started.id);
    return this.info(sb.id);
  }

  info(ref: string): DesktopInfo {
    const sb = this.desktopOf(ref);
    const screen = this.screen(sb);
    return { sandbox: sb.name, ...screen, display: DESKTOP.display, running: sb.state === 'running' && this.process(sb)?.state === 'running' };
  }

  // ---- running things on the display -----------------------------------------------------

  /** A command on the sandbox's display; stdout bounded (over the bound: PAYLOAD_TOO_LARGE). */
  private async run(sb: SandboxRecord, argv: string[], opts: { maxBytes?: number; timeoutMs?: number; raw?: boolean } = {}): Promise<RunResult> {
    const maxBytes = opts.maxBytes ?? SMALL_OUTPUT_BYTES;
    const out: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    const tooMuch = new AbortController();
    const outcome = await this.d.runtime.exec(sb.id, {
      argv,
      env: this.d.sandboxes.commandEnv(sb, { DISPLAY: DESKTOP.display }),
      cwd: '/',
      timeoutMs: opts.timeoutMs ?? ACTION_TIMEOUT_MS,
      signal: tooMuch.signal,
      onStdout: (b) => {
        bytes += b.length;
        if (bytes > maxBytes) tooMuch.abort();
        else out.push(b);
      },
      onStderr: (b) => {
        if (stderr.length < 4096) stderr += b.toString('utf8');
      },
    });
    if (bytes > maxBytes) throw new NookError('PAYLOAD_TOO_LARGE', `${argv[0] ?? 'the command'} answered more than ${maxBytes} bytes`, { hint: 'the desktop tools in this sandbox misbehave: nook desktop restart, or recreate it', context: { maxBytes } });
    if (outcome.timedOut) throw new NookError('TIMEOUT', `${argv[0] ?? 'the command'} on the desktop of ${sb.name} did not finish in time`, { hint: `is the desktop stuck? nook desktop restart ${sb.name}`, context: { timeoutMs: opts.timeoutMs ?? ACTION_TIMEOUT_MS } });
    const result = { code: outcome.exitCode, stdout: Buffer.concat(out), stderr };
    if (opts.raw || result.code === 0) return result;
    // Whatever the tool said, a display that does not answer a probe is a desktop that is down.
    if (NO_DISPLAY.test(stderr) || this.process(sb)?.state !== 'running' || (await this.run(sb, ['xdotool', 'getdisplaygeometry'], { raw: true })).code !== 0) {
      throw this.down(sb, 'its X server does not answer');
    }
    throw new NookError('RUNTIME_ERROR', `${argv[0] ?? 'the command'} failed on the desktop of ${sb.name} (exit ${result.code}): ${stderr.trim().slice(0, 300)}`, { hint: `nook desktop restart ${sb.name} if the desktop is broken` });
  }

  /** Waits until the X server of desktop process `processId` answers. */
  private async waitReady(sb: SandboxRecord, processId: string): Promise<void> {
    if (this.ready.has(processId)) return;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const r = await this.run(sb, ['xdotool', 'getdisplaygeometry'], { raw: true });
      if (r.code === 0) break;
      if (this.process(sb)?.state !== 'running') throw this.down(sb, r.stderr.trim().split('\n')[0]?.slice(0, 200) || 'its supervisor ended');
      if (Date.now() > deadline) throw this.down(sb, `its X server did not answer within ${READY_TIMEOUT_MS} ms`);
      await new Promise((res) => setTimeout(res, 100));
    }
    this.ready.add(processId);
  }

  /** The running desktop sandbox `ref`, its screen, its X server answering. */
  private async prepare(ref: string): Promise<{ sb: SandboxRecord; screen: Screen }> {
    const sb = this.desktopOf(ref);
    const running = await this.d.sandboxes.ensureRunning(sb.id);
    const p = this.process(running);
    if (p?.state !== 'running') throw this.down(running, p ? `its supervisor ${p.state} (exit ${p.exitCode ?? p.signal ?? '?'})` : 'it was never started');
    await this.waitReady(running, p.id);
    return { sb: running, screen: this.screen(running) };
  }

  private async act(ref: string, kind: string, argv: (screen: Screen) => string[], note: Record<string, unknown>, timeoutMs?: number): Promise<{ ok: true; action: string; durationMs: number }> {
    const started = Date.now();
    const { sb, screen } = await this.prepare(ref);
    const args = argv(screen);
    this.d.audit.note({ desktop: { kind, ...note } });
    await this.run(sb, args, timeoutMs ? { timeoutMs } : {});
    return { ok: true, action: kind, durationMs: Date.now() - started };
  }

  // ---- the agent's actions ---------------------------------------------------------------

  click(ref: string, req: { x: number; y: number; button?: keyof typeof BUTTONS; double?: boolean }) {
    return this.act(ref, 'click', (s) => {
      checkPoint(s, req.x, req.y);
      // Press and release rather than `click`, which sleeps 100 ms after each click.
      const b = BUTTONS[req.button ?? 'left'];
      const once = ['mousedown', b, 'mouseup', b];
      return ['xdotool', 'mousemove', String(req.x), String(req.y), ...once, ...(req.double ? once : [])];
    }, { x: req.x, y: req.y, button: req.button ?? 'left', double: req.double ?? false });
  }

  move(ref: string, req: { x: number; y: number }) {
    return this.act(ref, 'move', (s) => {
      checkPoint(s, req.x, req.y);
      return ['xdotool', 'mousemove', String(req.x), String(req.y)];
    }, { x: req.x, y: req.y });
  }

  drag(ref: string, req: { fromX: number; fromY: number; toX: number; toY: number; button?: keyof typeof BUTTONS }) {
    return this.act(ref, 'drag', (s) => {
      checkPoint(s, req.fromX, req.fromY, ['fromX', 'fromY']);
      checkPoint(s, req.toX, req.toY, ['toX', 'toY']);
      const b = BUTTONS[req.button ?? 'left'];
      // Motion in between: toolkits start a drag only after the pointer moves with the button down.
      const midX = String(Math.round((req.fromX + req.toX) / 2));
      const midY = String(Math.round((req.fromY + req.toY) / 2));
      return ['xdotool', 'mousemove', String(req.fromX), String(req.fromY), 'mousedown', b, 'mousemove', midX, midY, 'mousemove', String(req.toX), String(req.toY), 'mouseup', b];
    }, { fromX: req.fromX, fromY: req.fromY, toX: req.toX, toY: req.toY });
  }

  scroll(ref: string, req: { direction: keyof typeof WHEEL; amount?: number; x?: number; y?: number }) {
    return this.act(ref, 'scroll', (s) => {
      if ((req.x === undefined) !== (req.y === undefined)) throw new NookError('INVALID_ARGUMENT', 'give both x and y, or neither (scroll where the pointer is)', { context: { issues: [{ path: req.x === undefined ? 'x' : 'y', message: 'missing' }] } });
      const at = req.x !== undefined && req.y !== undefined ? (checkPoint(s, req.x, req.y), ['mousemove', String(req.x), String(req.y)]) : [];
      return ['xdotool', ...at, 'click', '--repeat', String(req.amount ?? 3), '--delay', '5', WHEEL[req.direction]];
    }, { direction: req.direction, amount: req.amount ?? 3, x: req.x ?? null, y: req.y ?? null });
  }

  /** Typed text goes as one argv element after `--`: never through a shell, never an option. */
  type(ref: string, req: { text: string }) {
    const text = checkText(req.text);
    const digest = createHash('sha256').update(text).digest('hex');
    return this.act(ref, 'type', () => ['xdotool', 'type', '--delay', String(TYPE_DELAY_MS), '--', text], { sha256: digest, chars: [...text].length }, ACTION_TIMEOUT_MS + [...text].length * (TYPE_DELAY_MS * 3));
  }

  key(ref: string, req: { keys: string; repeat?: number }) {
    const combo = parseKeyCombo(req.keys);
    return this.act(ref, 'key', () => ['xdotool', 'key', '--delay', '0', '--repeat', String(req.repeat ?? 1), '--', combo], { keys: combo, repeat: req.repeat ?? 1 });
  }

  async cursor(ref: string): Promise<DesktopCursor> {
    const { sb } = await this.prepare(ref);
    const out = (await this.run(sb, ['xdotool', 'getmouselocation', '--shell'])).stdout.toString('utf8');
    const x = /^X=(\d{1,6})$/m.exec(out)?.[1];
    const y = /^Y=(\d{1,6})$/m.exec(out)?.[1];
    if (x === undefined || y === undefined) throw new NookError('RUNTIME_ERROR', 'xdotool did not say where the pointer is', { hint: `nook desktop restart ${sb.name}` });
    return { x: Number(x), y: Number(y) };
  }

  /** Top-level windows the window manager knows, with titles (sandbox output: parsed defensively, bounded). */
  async windows(ref: string): Promise<DesktopWindow[]> {
    const { sb } = await this.prepare(ref);
    const out = (await this.run(sb, ['wmctrl', '-lG'], { raw: true })).stdout.toString('utf8');
    const windows: DesktopWindow[] = [];
    for (const line of out.split('\n')) {
      const m = /^(0x[0-9a-f]{1,16})\s+-?\d+\s+(-?\d{1,6})\s+(-?\d{1,6})\s+(\d{1,6})\s+(\d{1,6})\s+\S+\s?(.*)$/i.exec(line);
      if (!m) continue;
      windows.push({ id: m[1] as string, x: Number(m[2]), y: Number(m[3]), width: Number(m[4]), height: Number(m[5]), title: (m[6] ?? '').slice(0, MAX_TITLE) });
      if (windows.length >= MAX_WINDOWS) break;
    }
    return windows;
  }

  /** A PNG of the whole screen, checked to be one (signature, IHDR) of the screen's size. */
  async screenshot(ref: string): Promise<Buffer> {
    const { sb, screen } = await this.prepare(ref);
    return this.shoot(sb, screen);
  }

  private async shoot(sb: SandboxRecord, screen: Screen): Promise<Buffer> {
    const png = (await this.grab(sb)) ?? (await this.run(sb, ['/usr/local/bin/nook-screenshot'], { maxBytes: SCREENSHOT_MAX_BYTES })).stdout;
    const size = pngSize(png);
    if (!size || size.width !== screen.width || size.height !== screen.height) {
      throw new NookError('RUNTIME_ERROR', `the screenshot tool of ${sb.name} did not answer a ${screen.width}x${screen.height} PNG`, { hint: `nook desktop restart ${sb.name}` });
    }
    return png;
  }

  /**
   * A screenshot from the long-lived helper nook-grab (its unix socket, reached by socat
   * through the agent's exec: no new channel into the sandbox, and the answer is bounded in
   * bytes and time like any exec output). Undefined when the helper is not there (no
   * socket, refused, no socat in an older image, an empty answer): the caller falls back to
   * the per-call tool. Whatever it does answer is checked by the caller like the tool's.
   */
  private async grab(sb: SandboxRecord): Promise<Buffer | undefined> {
    const r = await this.run(sb, ['socat', '-u', `UNIX-CONNECT:${DESKTOP.grabSocket}`, 'STDOUT'], { maxBytes: SCREENSHOT_MAX_BYTES, timeoutMs: GRAB_TIMEOUT_MS, raw: true });
    return r.code === 0 && r.stdout.length > 0 ? r.stdout : undefined;
  }

  /** Waits until the screen has not changed for quietMs (TIMEOUT after timeoutMs). */
  async waitIdle(ref: string, req: { quietMs?: number; timeoutMs?: number }): Promise<{ idle: true; waitedMs: number }> {
    const quietMs = req.quietMs ?? 500;
    const timeoutMs = req.timeoutMs ?? 10_000;
    const started = Date.now();
    const { sb, screen } = await this.prepare(ref);
    let last = '';
    let since = Date.now();
    for (;;) {
      const digest = createHash('sha256').update(await this.shoot(sb, screen)).digest('hex');
      const now = Date.now();
      if (digest !== last) {
        last = digest;
        since = now;
      } else if (now - since >= quietMs) return { idle: true, waitedMs: now - started };
      if (now - started > timeoutMs) throw new NookError('TIMEOUT', `the screen of ${sb.name} kept changing for ${timeoutMs} ms`, { hint: 'wait longer (timeoutMs), or ask for a shorter quiet time (quietMs)', context: { timeoutMs } });
      await new Promise((res) => setTimeout(res, Math.min(100, quietMs / 4)));
    }
  }

  /** A GUI program as a background process on the sandbox's display. */
  async launch(ref: string, req: { argv: string[]; name?: string }): Promise<Process> {
    const { sb } = await this.prepare(ref);
    return this.d.processes.startIn(sb.id, { argv: req.argv, ...(req.name ? { name: req.name } : {}), env: { DISPLAY: DESKTOP.display } });
  }

  /**
   * The noVNC link for people: view-only unless control; it dies with compute. The token is
   * the link's first path segment, so every relative asset URL and the WebSocket (path=) carry
   * it and the exposure guard lets them through; no cookie ever holds it (cookies go to every
   * port of a host, RFC 6265 §8.5, so a cookie token reached other sandboxes' exposed ports).
   */
  async url(ref: string, req: { control?: boolean }): Promise<DesktopUrl> {
    const { sb } = await this.prepare(ref);
    const control = req.control ?? false;
    const e = await this.d.network.expose(sb.id, control ? DESKTOP.controlPort : DESKTOP.viewPort);
    await this.serveLinks(sb);
    const query = `autoconnect=1&resize=scale&reconnect=1&view_only=${control ? 0 : 1}&path=${e.token}/websockify`;
    return { url: `http://127.0.0.1:${e.hostPort}/${e.token}/vnc.html?${query}`, control, hostPort: e.hostPort };
  }

  /**
   * Makes the sandbox's websockify (web root /usr/share/novnc) answer under /TOKEN/ for each
   * live viewer link: a symlink TOKEN -> . in the web root; stale ones are removed. The sandbox
   * learns its own viewer tokens, which gives it nothing it lacks (it owns its display). The
   * root gets an index.html so no listing of it (which would name the links: a view-only
   * holder would read the control token) is ever served; the old cookie landing page goes.
   */
  private async serveLinks(sb: SandboxRecord, timeoutMs = ACTION_TIMEOUT_MS): Promise<void> {
    const tokens = this.d.network.exposures(sb.id).filter((x) => x.port === DESKTOP.viewPort || x.port === DESKTOP.controlPort).map((x) => x.token);
    const r = await this.run(sb, ['sh', '-c', SERVE_LINKS, 'nook-viewer-links', ...tokens], { raw: true, timeoutMs });
    if (r.code !== 0) throw new NookError('RUNTIME_ERROR', `could not set up the viewer in ${sb.name}: ${r.stderr.trim().slice(0, 300)}`, { hint: `is /usr/share/novnc writable? nook desktop restart ${sb.name}, or recreate the sandbox` });
  }
}

/** Run in the sandbox as root with the live viewer tokens as arguments (see serveLinks). */
const SERVE_LINKS = `set -e
cd /usr/share/novnc
rm -f nook.html
printf '<!doctype html><meta http-equiv="refresh" content="0; url=vnc.html">\\n' > index.html
for f in *; do if [ -L "$f" ] && [ "$(readlink -- "$f")" = . ]; then rm -f -- "$f"; fi; done
for t in "$@"; do ln -s . "./$t"; done
`;

/** Width and height from a PNG's IHDR, or undefined when it is not a PNG. */
export function pngSize(png: Buffer): { width: number; height: number } | undefined {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (png.length < 33 || !png.subarray(0, 8).equals(signature) || png.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

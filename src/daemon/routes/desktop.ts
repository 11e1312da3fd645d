/** Desktop sandboxes: the screen, the agent's input actions, GUI programs and viewer links. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { parseBody } from '../http/body.js';
import { on, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const desktop = nook.desktop;
  on(app, 'desktopInfo', (c) => answer(c, desktop.info(ref(c))));
  on(app, 'desktopScreenshot', async (c) => {
    const png = await desktop.screenshot(ref(c));
    return new Response(new Uint8Array(png).buffer as ArrayBuffer, { headers: { 'content-type': 'image/png', 'content-length': String(png.length), 'cache-control': 'no-store' } });
  });
  on(app, 'desktopCursor', async (c) => answer(c, await desktop.cursor(ref(c))));
  on(app, 'desktopWindows', async (c) => answer(c, { windows: await desktop.windows(ref(c)) }));
  on(app, 'desktopClick', async (c) => answer(c, await desktop.click(ref(c), await parseBody(c, routes.desktopClick.body))));
  on(app, 'desktopMove', async (c) => answer(c, await desktop.move(ref(c), await parseBody(c, routes.desktopMove.body))));
  on(app, 'desktopDrag', async (c) => answer(c, await desktop.drag(ref(c), await parseBody(c, routes.desktopDrag.body))));
  on(app, 'desktopScroll', async (c) => answer(c, await desktop.scroll(ref(c), await parseBody(c, routes.desktopScroll.body))));
  on(app, 'desktopType', async (c) => answer(c, await desktop.type(ref(c), await parseBody(c, routes.desktopType.body))));
  on(app, 'desktopKey', async (c) => answer(c, await desktop.key(ref(c), await parseBody(c, routes.desktopKey.body))));
  on(app, 'desktopLaunch', async (c) => answer(c, await desktop.launch(ref(c), await parseBody(c, routes.desktopLaunch.body))));
  on(app, 'desktopWaitIdle', async (c) => answer(c, await desktop.waitIdle(ref(c), await parseBody(c, routes.desktopWaitIdle.body))));
  on(app, 'desktopRestart', async (c) => answer(c, await desktop.restart(ref(c))));
  on(app, 'desktopUrl', async (c) => answer(c, await desktop.url(ref(c), await parseBody(c, routes.desktopUrl.body))));
}

/** `nook desktop ...`: drive and watch the screen of a desktop sandbox (template desktop). */
import { promises as fsp } from 'node:fs';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import type { Sandbox } from '../../sdk/sandbox/sandbox.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { printJson, table } from '../render.js';

/** A screen coordinate: a non-negative integer (the daemon checks it is on the screen). */
function coord(value: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new NookError('INVALID_ARGUMENT', `${value} is not a screen coordinate: give a non-negative integer`);
  return Number(value);
}

async function desktopOf(ref: string): Promise<Sandbox> {
  return (await connect()).sandboxes.get(ref);
}

type Json = { json?: boolean };

/** Prints `r` as JSON with --json, else the line `text(r)`. */
function out<T>(flags: Json, r: T, text: (r: T) => string): void {
  if (flags.json) printJson(r);
  else process.stdout.write(`${text(r)}\n`);
}

export function registerDesktopCommands(program: Command): void {
  const desktop = program.command('desktop').description('a desktop sandbox\'s screen: screenshots, mouse and keyboard input, GUI programs, a viewer link');
  const sub = (spec: string, description: string): Command => desktop.command(spec).description(description).option('--json', 'print JSON');

  sub('info <sandbox>', 'screen size, display and whether the X server runs').action(async (ref: string, f: Json) => {
    out(f, await (await desktopOf(ref)).desktop.info(), (i) => `${i.sandbox}: ${i.width}x${i.height} on ${i.display}, ${i.running ? 'running' : 'NOT running (nook desktop restart)'}`);
  });

  sub('screenshot <sandbox>', 'the whole screen as PNG')
    .requiredOption('-o, --output <file>', 'write the PNG here (- for stdout)')
    .action(async (ref: string, f: Json & { output: string }) => {
      const png = await (await desktopOf(ref)).desktop.screenshot();
      if (f.output === '-') process.stdout.write(png);
      else {
        await fsp.writeFile(f.output, png);
        out(f, { file: f.output, bytes: png.length, width: png.readUInt32BE(16), height: png.readUInt32BE(20) }, (r) => `${r.file}: ${r.width}x${r.height} PNG, ${r.bytes} bytes`);
      }
    });

  sub('click <sandbox> <x> <y>', 'move the pointer to x,y and click')
    .option('--button <button>', 'left, middle or right', 'left')
    .option('--double', 'double click')
    .action(async (ref: string, x: string, y: string, f: Json & { button: 'left'; double?: boolean }) => {
      const r = await (await desktopOf(ref)).desktop.click(coord(x), coord(y), { button: f.button, ...(f.double ? { double: true } : {}) });
      out(f, r, () => `clicked ${x},${y}`);
    });

  sub('move <sandbox> <x> <y>', 'move the pointer to x,y').action(async (ref: string, x: string, y: string, f: Json) => {
    out(f, await (await desktopOf(ref)).desktop.move(coord(x), coord(y)), () => `pointer at ${x},${y}`);
  });

  sub('drag <sandbox> <fromX> <fromY> <toX> <toY>', 'press at from, move to to, release')
    .option('--button <button>', 'left, middle or right', 'left')
    .action(async (ref: string, fx: string, fy: string, tx: string, ty: string, f: Json & { button: 'left' }) => {
      out(f, await (await desktopOf(ref)).desktop.drag([coord(fx), coord(fy)], [coord(tx), coord(ty)], { button: f.button }), () => `dragged ${fx},${fy} -> ${tx},${ty}`);
    });

  sub('scroll <sandbox> <direction>', 'turn the wheel: up, down, left or right')
    .option('--amount <n>', 'wheel clicks (default 3)', positiveInt)
    .option('--at <x,y>', 'where (default: where the pointer is)')
    .action(async (ref: string, direction: 'up', f: Json & { amount?: number; at?: string }) => {
      const [x, y] = f.at ? f.at.split(',').map(coord) : [];
      const r = await (await desktopOf(ref)).desktop.scroll(direction, { ...(f.amount ? { amount: f.amount } : {}), ...(x !== undefined && y !== undefined ? { x, y } : {}) });
      out(f, r, () => `scrolled ${direction}`);
    });

  sub('type <sandbox> <text>', 'type text (tab and newline as Tab and Return; other control characters are refused)').action(async (ref: string, text: string, f: Json) => {
    out(f, await (await desktopOf(ref)).desktop.type(text), () => `typed ${[...text].length} characters`);
  });

  sub('key <sandbox> <combo>', 'press a key combination: ctrl+l, Return, alt+F4, shift+Tab')
    .option('--repeat <n>', 'press it n times', positiveInt)
    .action(async (ref: string, combo: string, f: Json & { repeat?: number }) => {
      out(f, await (await desktopOf(ref)).desktop.key(combo, f.repeat ? { repeat: f.repeat } : {}), () => `pressed ${combo}`);
    });

  sub('cursor <sandbox>', 'where the pointer is').action(async (ref: string, f: Json) => {
    out(f, await (await desktopOf(ref)).desktop.cursor(), (c) => `${c.x},${c.y}`);
  });

  sub('windows <sandbox>', 'top-level windows with titles').action(async (ref: string, f: Json) => {
    const windows = await (await desktopOf(ref)).desktop.windows();
    if (f.json) printJson({ windows });
    else process.stdout.write(table(['ID', 'X', 'Y', 'WIDTH', 'HEIGHT', 'TITLE'], windows.map((w) => [w.id, String(w.x), String(w.y), String(w.width), String(w.height), w.title])));
  });

  sub('launch <sandbox> <argv...>', 'start a GUI program on the display as a background process: nook desktop launch NAME -- xterm')
    .option('--name <name>', 'name the process (nook logs, nook kill)')
    .action(async (ref: string, argv: string[], f: Json & { name?: string }) => {
      out(f, await (await desktopOf(ref)).desktop.launch(argv, f.name ? { name: f.name } : {}), (p) => `${p.name ?? p.id} started`);
    });

  sub('wait-idle <sandbox>', 'wait until the screen stops changing')
    .option('--quiet <ms>', 'unchanged this long (default 500)', positiveInt)
    .option('--timeout <ms>', 'give up after (default 10000)', positiveInt)
    .action(async (ref: string, f: Json & { quiet?: number; timeout?: number }) => {
      const r = await (await desktopOf(ref)).desktop.waitIdle({ ...(f.quiet ? { quietMs: f.quiet } : {}), ...(f.timeout ? { timeoutMs: f.timeout } : {}) });
      out(f, r, () => `idle after ${r.waitedMs} ms`);
    });

  sub('restart <sandbox>', 'end and start again the X server and its services (after a crash)').action(async (ref: string, f: Json) => {
    out(f, await (await desktopOf(ref)).desktop.restart(), (i) => `${i.sandbox}: desktop ${i.width}x${i.height} running again`);
  });

  sub('url <sandbox>', 'a token-guarded noVNC link for people on this host: view-only unless --control; it dies when the sandbox stops')
    .option('--control', 'let the viewer use keyboard and mouse')
    .action(async (ref: string, f: Json & { control?: boolean }) => {
      out(f, await (await desktopOf(ref)).desktop.url(f.control ? { control: true } : {}), (u) => u.url);
    });
}

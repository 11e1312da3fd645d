// Bundles the web console (src/console, Preact + xterm.js) into dist/console/, which nookd
// serves on its TCP listener (src/daemon/http/console-static.ts). esbuild's browser platform
// refuses a Node module: the console reaches the daemon only through the SDK's fetch
// transport (src/sdk/browser.ts). The metafile lists every input, for the unit test that
// checks nothing of Node's got in.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';

const outdir = 'dist/console';
rmSync(outdir, { recursive: true, force: true });
mkdirSync(`${outdir}/assets`, { recursive: true });
const result = await build({
  entryPoints: { console: 'src/console/main.tsx' },
  outdir: `${outdir}/assets`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});
copyFileSync('src/console/index.html', `${outdir}/index.html`);
writeFileSync('dist/console-meta.json', JSON.stringify(result.metafile));

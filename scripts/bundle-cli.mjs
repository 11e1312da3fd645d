// Bundles the nook CLI (dist/src/cli/main.js, tsc's output) into dist/src/bin/: one entry file
// plus a chunk per lazily loaded part (each command module, zod schemas, tar, ws), so a
// command reads a handful of files instead of dozens: start-up time, see bench/cli.ts.
// The output sits one directory below dist/src, like dist/src/cli, so daemonEntry() still
// finds dist/src/daemon/main.js.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';

const outdir = 'dist/src/bin';
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { nook: 'dist/src/cli/main.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: '[name]-[hash]',
  // Bundled CommonJS packages (commander) call require() for Node's built-ins.
  banner: { js: "import { createRequire as __nookCreateRequire } from 'node:module'; const require = __nookCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync(`${outdir}/nook.js`, 0o755);

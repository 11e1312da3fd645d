import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const SRC = join(import.meta.dirname, '..', '..', '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The src/ top-level directories a file imports from (relative imports only; packages are not layers). */
function layersImported(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1] ?? '');
  return specs.map((s) => relative(SRC, resolve(dirname(file), s)).split('/')[0] ?? '');
}

describe('layers', () => {
  it('the SDK imports only api/ (and itself), so it ships without the daemon', () => {
    const bad = sources(join(SRC, 'sdk')).flatMap((f) => layersImported(f).filter((l) => l !== 'sdk' && l !== 'api').map((l) => `${relative(SRC, f)} -> ${l}/`));
    assert.deepEqual(bad, []);
  });
  it('api/ imports nothing else of nook', () => {
    const bad = sources(join(SRC, 'api')).flatMap((f) => layersImported(f).filter((l) => l !== 'api').map((l) => `${relative(SRC, f)} -> ${l}/`));
    assert.deepEqual(bad, []);
  });
  it('the CLI never loads the daemon\'s code (nook daemon execs nookd)', () => {
    const bad = sources(join(SRC, 'cli')).flatMap((f) => layersImported(f).filter((l) => l === 'daemon' || l === 'core').map((l) => `${relative(SRC, f)} -> ${l}/`));
    assert.deepEqual(bad, []);
  });
  it('no hand-written /v1 path in the SDK: every path comes from the route table', () => {
    const bad = sources(join(SRC, 'sdk')).filter((f) => /['"`]\/v1\//.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    assert.deepEqual(bad, []);
  });
});

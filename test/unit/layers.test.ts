/**
 * The import rules of docs/architecture.md: every relative import (static or dynamic) in
 * src/ goes down the layer map, never up or sideways.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const SRC = join(import.meta.dirname, '..', '..', '..', 'src');

/** Which layers each layer may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  api: [],
  util: ['api'],
  store: ['api', 'util'],
  storage: ['api', 'util'],
  runtime: ['api', 'util'],
  net: ['api', 'util'],
  oci: ['api', 'util'],
  core: ['api', 'util', 'store', 'storage', 'runtime', 'net', 'oci'],
  daemon: ['api', 'util', 'core'],
  sdk: ['api'],
  cli: ['api', 'util', 'sdk'],
  // The web console is a client like the CLI, in a browser: the SDK's browser transport and the wire types only.
  console: ['api', 'sdk'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : []));
}

function layerOf(file: string): string {
  return relative(SRC, file).split('/')[0] ?? '';
}

describe('layers', () => {
  it('every layer of src/ is on the map', () => {
    const layers = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.deepEqual(layers.filter((l) => !(l in ALLOWED)), []);
  });

  it('imports only go down', () => {
    const bad: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
        const target = resolve(dirname(file), m[1] ?? '');
        const from = layerOf(file);
        const to = layerOf(target);
        if (from !== to && !(ALLOWED[from] ?? []).includes(to)) bad.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    assert.deepEqual(bad, [], 'imports that go up or sideways');
  });

  it('no hand-written /v1 path in the SDK: every path comes from the route table', () => {
    const bad = sourceFiles(join(SRC, 'sdk')).filter((f) => /['"`]\/v1\//.test(readFileSync(f, 'utf8'))).map((f) => relative(SRC, f));
    assert.deepEqual(bad, []);
  });
});

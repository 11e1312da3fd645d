/** Builds OCI image layouts by hand (per the image spec), for tests that feed nook or skopeo. */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from '../../src/util/proc.js';

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export interface LayoutImage {
  /** Uncompressed layer tars, lowest first (stored gzipped). */
  layers: Buffer[];
  /** The `config` part of the image config (Env, WorkingDir, User, Cmd...). */
  config: Record<string, unknown>;
  architecture?: string;
}

export interface Blob {
  digest: string;
  size: number;
}

/**
 * Writes an OCI image layout directory; one image is listed in index.json directly, several
 * through a multi-platform image index. Returns the digest of what index.json lists.
 */
export function writeLayout(layout: string, images: LayoutImage[], refName: string): { topDigest: string; manifests: Blob[] } {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer): Blob => {
    writeFileSync(join(layout, 'blobs', 'sha256', sha(b)), b);
    return { digest: `sha256:${sha(b)}`, size: b.length };
  };
  const manifests = images.map((img) => {
    const gz = img.layers.map((l) => gzipSync(l));
    const config = put(
      Buffer.from(JSON.stringify({ architecture: img.architecture ?? 'amd64', os: 'linux', config: img.config, rootfs: { type: 'layers', diff_ids: img.layers.map((l) => `sha256:${sha(l)}`) } })),
    );
    return put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: gz.map((g) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(g) })),
        }),
      ),
    );
  });
  const annotations = { 'org.opencontainers.image.ref.name': refName };
  let top: Blob & { mediaType: string };
  if (images.length === 1 && manifests[0]) {
    top = { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifests[0] };
  } else {
    const index = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: manifests.map((m, i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, platform: { os: 'linux', architecture: images[i]?.architecture ?? 'amd64' } })),
        }),
      ),
    );
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...index };
  }
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations }] }));
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { topDigest: top.digest, manifests };
}

/** Tars `members` of `dir` as root-owned entries. */
export async function tarOf(dir: string, ...members: string[]): Promise<Buffer> {
  const r = await run(['sh', '-c', 'dir=$1; shift; tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf - "$@" | base64 -w0', 'sh', dir, ...members]);
  return Buffer.from(r.stdout, 'base64');
}

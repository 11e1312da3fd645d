/** Hand-made tar archives for tests: header fields exactly as given, so hostile ones too. */
import { Header, type HeaderData } from 'tar';

export interface RawTarEntry {
  path: string;
  type?: HeaderData['type'];
  mode?: number;
  linkpath?: string;
  body?: string;
  /** A device node's major number (minor 1). */
  devmaj?: number;
}

/** A raw tar archive of `entries`, ending in the two zero blocks. */
export function rawTar(entries: RawTarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const h = new Header({
      path: e.path, type: e.type ?? 'File', mode: e.mode ?? 0o644, size: e.type && e.type !== 'File' ? 0 : body.length, mtime: new Date(0),
      ...(e.linkpath ? { linkpath: e.linkpath } : {}), ...(e.devmaj ? { devmaj: e.devmaj, devmin: 1 } : {}),
    });
    const block = Buffer.alloc(512);
    h.encode(block);
    blocks.push(block);
    if (body.length) blocks.push(Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

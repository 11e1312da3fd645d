import { NookError } from '../api/errors.js';

/** A parsed image reference: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`. */
export interface ImageReference {
  registry: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

const REPO_PART = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Parses a reference the way container tools do: the first part is a registry when it has a
 * dot or a port or is `localhost`; otherwise the image is on Docker Hub (`library/` for
 * one-part names).
 */
export function parseReference(input: string): ImageReference {
  const bad = (why: string): NookError =>
    new NookError('INVALID_ARGUMENT', `${JSON.stringify(input)} is not an image reference: ${why}`, {
      hint: 'write HOST[:PORT]/REPOSITORY[:TAG] or ...@sha256:DIGEST, e.g. 127.0.0.1:5000/library/python:3.12',
    });
  let rest = input.trim();
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad('the digest must be sha256:<64 hex digits>');
  }
  const parts = rest.split('/');
  let registry = 'registry-1.docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    registry = first;
    parts.shift();
  }
  let tag: string | null = null;
  const last = parts[parts.length - 1] ?? '';
  const colon = last.lastIndexOf(':');
  if (colon >= 0) {
    tag = last.slice(colon + 1);
    parts[parts.length - 1] = last.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`the tag ${JSON.stringify(tag)} is not valid`);
  }
  if (parts.length === 0 || parts.some((p) => !REPO_PART.test(p))) throw bad('repository parts are lower-case letters, digits and . _ - separators');
  if (registry === 'registry-1.docker.io' && parts.length === 1) parts.unshift('library');
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), tag, digest };
}

/** A registry reference, not a local image name: references have a `/` (`HOST[:PORT]/REPO[:TAG]`). */
export function isRegistryReference(ref: string): boolean {
  return ref.includes('/');
}

export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The local image name a pull gives by default: the repository's last part and its tag. */
export function defaultLocalName(r: ImageReference): string {
  const base = r.repository.split('/').pop() ?? r.repository;
  if (r.tag) return `${base}:${r.tag}`;
  return `${base}:${(r.digest ?? '').slice(7, 19)}`;
}

/** Loopback registries and those listed in NOOK_INSECURE_REGISTRIES are spoken to over plain HTTP. */
export function registryScheme(registry: string): 'http' | 'https' {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.split(':')[0] ?? '';
  if (host === 'localhost' || host === '[::1]' || /^127\./.test(host)) return 'http';
  const insecure = (process.env.NOOK_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return insecure.includes(registry) || insecure.includes(host) ? 'http' : 'https';
}

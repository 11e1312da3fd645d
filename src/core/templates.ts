/**
 * Named templates: an image preset plus the create defaults that suit it. A request's own
 * values always win over the template's.
 */
import type { CreateSandboxRequest, Preset, Template } from '../api/schemas.js';

export const TEMPLATES: Record<Template['name'], Omit<Template, 'name'> & { image: Preset }> = {
  minimal: { image: 'minimal', description: 'busybox only: the smallest, fastest sandbox', memoryMiB: 256, pids: 256, env: {} },
  python: { image: 'python', description: 'Debian bookworm with python3', memoryMiB: 1024, pids: 1024, env: { PYTHONUNBUFFERED: '1' } },
  node: { image: 'node', description: "Debian bookworm with Node.js 18 (Debian's nodejs)", memoryMiB: 1024, pids: 1024, env: { NODE_ENV: 'development' } },
  base: { image: 'base', description: "E2B's default: Debian bookworm with bash, python3, sudo and the login user (uid 1000)", memoryMiB: 1024, pids: 1024, env: {} },
  browser: {
    image: 'browser',
    description: "Debian's Chromium with a headless launcher (chromium-headless); pages only through the network allow-list",
    memoryMiB: 2048,
    pids: 4096,
    env: { NOOK_BROWSER_PROFILE: '/tmp/chromium-profile' },
  },
  desktop: {
    image: 'desktop',
    description: 'An X desktop (Xvfb 1280x800, openbox, xterm, Chromium) for computer-use agents: nook desktop ...; viewer via noVNC',
    memoryMiB: 2048,
    pids: 4096,
    env: { NOOK_BROWSER_PROFILE: '/tmp/chromium-profile', DISPLAY: ':0' },
  },
};

export function listTemplates(): Template[] {
  return Object.entries(TEMPLATES).map(([name, t]) => ({ name: name as Template['name'], ...t }));
}

/** The request with the template's defaults filled in where it says nothing. */
export function applyTemplate(req: CreateSandboxRequest): CreateSandboxRequest {
  if (!req.template) return req;
  const t = TEMPLATES[req.template];
  return {
    ...req,
    image: req.image ?? t.image,
    memoryMiB: req.memoryMiB ?? t.memoryMiB,
    pids: req.pids ?? t.pids,
    env: { ...t.env, ...(req.env ?? {}) },
    labels: { 'nook.template': req.template, ...(req.labels ?? {}) },
  };
}

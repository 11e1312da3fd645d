/**
 * What every page shares: the one SDK client (browser transport), whether the daemon answers
 * and whether we are logged in, and small hooks. Everything a sandbox or a user controls is
 * rendered as text by Preact (never as HTML), so a name like `<img onerror=...>` shows as itself.
 */
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { BrowserClient } from '../sdk/browser.js';

export interface Session {
  client: BrowserClient;
  /** False while the daemon does not answer: buttons that change state are disabled (no action queued for later). */
  online: boolean;
  /** Bumped when the daemon answers again after a gap: pages reload what they show. */
  generation: number;
  loggedIn: boolean | undefined;
  setLoggedIn: (v: boolean) => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

export function errorText(e: unknown): string {
  const err = e as { message?: string; hint?: string; code?: string };
  return `${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}${err.hint ? `\nhint: ${err.hint}` : ''}`;
}

/**
 * Data for a page: loaded on mount, on `deps` changes, after the daemon comes back, and
 * every `everyMs` (live views). A failed load keeps the last data and shows the error.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number): { data: T | undefined; error: string | undefined; reload: () => void } {
  const { generation, online } = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => live && (setData(d), setError(undefined)),
      (e: unknown) => live && setError(errorText(e)),
    );
    return () => {
      live = false;
    };
  }, [...deps, generation, tick]);
  useEffect(() => {
    if (!everyMs || !online) return;
    const t = setInterval(reload, everyMs);
    return () => clearInterval(t);
  }, [everyMs, online, reload]);
  return { data, error, reload };
}

/**
 * A button that runs an action once per click (disabled while it runs or while offline) and
 * reports its outcome. `onError` is for a row that may vanish on reload (its sandbox was
 * destroyed elsewhere): the page shows the error where it outlives the row, and reloads.
 */
export function Action(props: { label: string; run: () => Promise<unknown>; onDone?: () => void; onError?: (error: string) => void; danger?: boolean; confirm?: string; title?: string }): preact.JSX.Element {
  const { online } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const click = (): void => {
    if (props.confirm && !window.confirm(props.confirm)) return;
    setBusy(true);
    setError(undefined);
    props.run().then(
      () => {
        setBusy(false);
        props.onDone?.();
      },
      (e: unknown) => {
        setBusy(false);
        if (props.onError) props.onError(errorText(e));
        else setError(errorText(e));
      },
    );
  };
  return (
    <>
      <button class={props.danger ? 'danger' : ''} disabled={busy || !online} onClick={click} title={props.title} data-action={props.label}>
        {busy ? `${props.label}…` : props.label}
      </button>
      {error && <div class="error">{error}</div>}
    </>
  );
}

export function ErrorLine({ error }: { error: string | undefined }): preact.JSX.Element | null {
  return error ? <div class="error">{error}</div> : null;
}

export function Labels({ labels }: { labels: Record<string, string> }): preact.JSX.Element {
  return (
    <>
      {Object.entries(labels).map(([k, v]) => (
        <span class="label" key={k}>
          {k}={v}
        </span>
      ))}
    </>
  );
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Seconds until `iso`, ticking once a second. */
export function Countdown({ iso }: { iso: string | null }): preact.JSX.Element {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  if (!iso) return <span class="muted">none</span>;
  const s = Math.max(0, Math.round((Date.parse(iso) - now) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return <span>{h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`}</span>;
}

/** A labelled text field bound to state. */
export function Field(props: { label: string; value: string; set: (v: string) => void; placeholder?: string; name?: string; size?: number }): preact.JSX.Element {
  return (
    <label>
      {props.label}{' '}
      <input name={props.name} size={props.size} value={props.value} placeholder={props.placeholder} onInput={(e) => props.set((e.target as HTMLInputElement).value)} />
    </label>
  );
}

/** Keeps the last `max` items of a growing list (logs, events): the page never holds the whole thing. */
export function useBounded<T>(max: number): [T[], (items: T[]) => void, () => void] {
  const ref = useRef<T[]>([]);
  const [, force] = useState(0);
  const push = useCallback((items: T[]) => {
    // Only the last `max` of a big batch are kept.
    for (const item of items.length > max ? items.slice(-max) : items) ref.current.push(item);
    if (ref.current.length > max) ref.current.splice(0, ref.current.length - max);
    force((n) => n + 1);
  }, []);
  const clear = useCallback(() => {
    ref.current = [];
    force((n) => n + 1);
  }, []);
  return [ref.current, push, clear];
}

export function Page({ title, children }: { title: ComponentChildren; children: ComponentChildren }): preact.JSX.Element {
  return (
    <main>
      <h1>{title}</h1>
      {children}
    </main>
  );
}

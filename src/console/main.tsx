/**
 * The web console: a Preact app served by nookd on its TCP listener. It logs in with the
 * one-time token of a `nook console` link (read from the URL's fragment, then dropped from
 * the address bar), and talks to the daemon only through the SDK's browser client.
 */
import './style.css';
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { BrowserClient } from '../sdk/browser.js';
import { errorText, SessionContext, type Session } from './lib.js';
import { AuditPage, EventsPage, ImagesPage, VolumesPage } from './pages.js';
import { SandboxesPage } from './sandboxes.js';
import { SandboxPage } from './sandbox.js';

/** Where the page keeps its session's proof (this origin only; see daemon/http/console-auth.ts). */
const PROOF_KEY = 'nook_console_proof';

/** The page the fragment names: #/sandboxes, #/sandbox/NAME, #/volumes, #/images, #/audit, #/events. */
function useRoute(): string[] {
  const read = (): string[] => location.hash.replace(/^#\/?/, '').split('/').map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = (): void => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Login({ client, onLogin, reason }: { client: BrowserClient; onLogin: () => void; reason: string | undefined }): preact.JSX.Element {
  const [link, setLink] = useState('');
  const [failed, setError] = useState<string | undefined>();
  const error = failed ?? reason;
  const submit = (e: Event): void => {
    e.preventDefault();
    const token = /#login=([^&\s]+)/.exec(link)?.[1] ?? link.trim();
    client.login(token).then(onLogin, (err: unknown) => setError(errorText(err)));
  };
  return (
    <div class="login" id="login">
      <h1>nook console</h1>
      <p>You are not logged in (or your session expired). On the host, run:</p>
      <pre class="mono">nook console</pre>
      <p>and open the link it prints. Or paste the link here:</p>
      <form onSubmit={submit} class="row">
        <input name="link" size={48} value={link} onInput={(e) => setLink((e.target as HTMLInputElement).value)} placeholder="http://…/console/#login=…" />
        <button type="submit">Log in</button>
      </form>
      {error && <div class="error">{error}</div>}
    </div>
  );
}

function Nav({ route, client, onLogout }: { route: string; client: BrowserClient; onLogout: () => void }): preact.JSX.Element {
  const link = (to: string, label: string): preact.JSX.Element => (
    <a href={`#/${to}`} class={route === to ? 'on' : ''}>
      {label}
    </a>
  );
  return (
    <header>
      <span class="brand">nook</span>
      {link('sandboxes', 'Sandboxes')}
      {link('volumes', 'Volumes')}
      {link('images', 'Images')}
      {link('audit', 'Audit')}
      {link('events', 'Events')}
      <span class="spacer" />
      <a href="#/" onClick={(e) => (e.preventDefault(), void client.logout().then(onLogout))}>
        Log out
      </a>
    </header>
  );
}

function App(): preact.JSX.Element {
  const [loggedIn, setLoggedIn] = useState<boolean | undefined>(undefined);
  const [reason, setReason] = useState<string | undefined>();
  const [online, setOnline] = useState(true);
  const [generation, setGeneration] = useState(0);
  const client = useMemo(
    () =>
      new BrowserClient({
        // The session's proof lives in this origin's storage, which exposed ports (other origins) cannot read.
        sessionProof: localStorage.getItem(PROOF_KEY) ?? undefined,
        onSessionProof: (proof) => (proof ? localStorage.setItem(PROOF_KEY, proof) : localStorage.removeItem(PROOF_KEY)),
        onUnauthorized: () => setLoggedIn(false),
        onReachable: (up) =>
          setOnline((was) => {
            // Back after a gap (a daemon restart): every page reloads; nothing is replayed.
            if (up && !was) setGeneration((g) => g + 1);
            return up;
          }),
      }),
    [],
  );
  const route = useRoute();

  // First: a login link's token (then out of the address bar and history), else the session we may have.
  useEffect(() => {
    const start = async (): Promise<void> => {
      const token = /^#login=([A-Za-z0-9_-]+)/.exec(location.hash)?.[1];
      if (token) {
        history.replaceState(null, '', `${location.pathname}#/sandboxes`);
        try {
          await client.login(token);
        } catch (e) {
          setReason(errorText(e));
          setLoggedIn(false);
          return;
        }
      }
      try {
        await client.health();
        setLoggedIn(true);
      } catch (e) {
        if ((e as { code?: string }).code !== 'UNAUTHORIZED') setReason(errorText(e));
        setLoggedIn(false);
      }
    };
    void start();
    // A login link opened in a tab already showing the console changes only the fragment.
    const onHash = (): void => void (location.hash.startsWith('#login=') && start());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // While the daemon is away, ask every two seconds whether it is back.
  useEffect(() => {
    if (online) return;
    const t = setInterval(() => void client.health().catch(() => undefined), 2000);
    return () => clearInterval(t);
  }, [online]);

  const session: Session = { client, online, generation, loggedIn, setLoggedIn };
  if (loggedIn === undefined) return <main class="muted">Connecting…</main>;
  if (!loggedIn) return <Login client={client} reason={reason} onLogin={() => (setReason(undefined), setLoggedIn(true), setGeneration((g) => g + 1))} />;
  const [page = 'sandboxes', arg = ''] = route;
  return (
    <SessionContext.Provider value={session}>
      <Nav route={page} client={client} onLogout={() => setLoggedIn(false)} />
      {!online && <div class="banner" id="offline">The daemon does not answer; reconnecting… (nothing you clicked is retried)</div>}
      {page === 'sandbox' && arg ? (
        <SandboxPage key={arg} name={arg} />
      ) : page === 'volumes' ? (
        <VolumesPage />
      ) : page === 'images' ? (
        <ImagesPage />
      ) : page === 'audit' ? (
        <AuditPage />
      ) : page === 'events' ? (
        <EventsPage />
      ) : (
        <SandboxesPage />
      )}
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);

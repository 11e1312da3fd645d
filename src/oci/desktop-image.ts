/**
 * What the desktop preset adds to Debian: a virtual X server, a window manager, a terminal,
 * Chromium, two VNC servers on the sandbox's own loopback (view-only and with input) and the
 * noVNC web client in front of each. The daemon runs `nook-desktop` as the background process
 * `desktop` when the sandbox starts (src/core/desktop.ts); agents drive the display with
 * xdotool run inside the sandbox, never on the host; screenshots come from the long-lived
 * helper nook-grab (per-call scrot when it is gone).
 */

/** Display, ports and tools the daemon and the image agree on. */
export const DESKTOP = {
  display: ':0',
  /** The background process that holds the desktop's services. */
  processName: 'desktop',
  /** noVNC front ends inside the sandbox: view-only, and with keyboard and mouse. */
  viewPort: 6080,
  controlPort: 6081,
  defaultWidth: 1280,
  defaultHeight: 800,
  /** Where the screenshot helper writes (tmpfs-free /tmp of the sandbox; overwritten each time). */
  shotPath: '/tmp/.nook-shot.png',
  /**
   * The long-lived screenshot helper's unix socket, inside the sandbox only: every
   * connection gets one PNG of the whole screen, then the helper closes it.
   */
  grabSocket: '/tmp/.nook-grab.sock',
} as const;

/**
 * The supervisor: starts Xvfb and, once its socket is there, the rest. It ends when Xvfb ends
 * (and takes the rest with it), so a crashed X server shows as an ended process and
 * `nook desktop restart` brings the whole desktop back.
 */
const SUPERVISOR = `#!/bin/sh
# nook: the desktop of a desktop sandbox (started by nookd as the background process "desktop").
W="\${NOOK_DESKTOP_WIDTH:-${DESKTOP.defaultWidth}}"; H="\${NOOK_DESKTOP_HEIGHT:-${DESKTOP.defaultHeight}}"
export DISPLAY=${DESKTOP.display}
pids=""
stop() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait; exit "\${1:-0}"; }
trap 'stop 0' TERM INT HUP
rm -f /tmp/.X0-lock /tmp/.X11-unix/X0
mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix
Xvfb :0 -screen 0 "\${W}x\${H}x24" -nolisten tcp -noreset -dpi 96 >/tmp/.nook-xvfb.log 2>&1 &
xvfb=$!; pids="$xvfb"
i=0
while [ ! -S /tmp/.X11-unix/X0 ]; do
  i=$((i+1))
  if [ $i -gt 200 ] || ! kill -0 $xvfb 2>/dev/null; then echo "nook-desktop: Xvfb did not start" >&2; cat /tmp/.nook-xvfb.log >&2; stop 1; fi
  sleep 0.05
done
openbox >/tmp/.nook-openbox.log 2>&1 & pids="$pids $!"
# The screenshot helper: Python and Pillow start once, not once a screenshot (nook-grab).
nook-grab >/tmp/.nook-grab.log 2>&1 & pids="$pids $!"
# VNC only on the sandbox's loopback; -nosel: no clipboard exchange with viewers (sensitive).
x11vnc -display :0 -localhost -rfbport 5900 -viewonly -nosel -shared -forever -nopw -quiet >/dev/null 2>&1 & pids="$pids $!"
x11vnc -display :0 -localhost -rfbport 5901 -nosel -shared -forever -nopw -quiet >/dev/null 2>&1 & pids="$pids $!"
websockify --web /usr/share/novnc 127.0.0.1:${DESKTOP.viewPort} 127.0.0.1:5900 >/dev/null 2>&1 & pids="$pids $!"
websockify --web /usr/share/novnc 127.0.0.1:${DESKTOP.controlPort} 127.0.0.1:5901 >/dev/null 2>&1 & pids="$pids $!"
echo "nook-desktop: \${W}x\${H} on :0 ready"
wait $xvfb
echo "nook-desktop: Xvfb ended" >&2
stop 1
`;

/** Chromium on the desktop: as the headless launcher, but with a window. */
const CHROMIUM_DESKTOP = `#!/bin/sh
# nook: Chromium on the sandbox's display. Pages are reached only through the allow-list proxy.
proxy=""
if [ -n "$HTTPS_PROXY" ]; then proxy="--proxy-server=$HTTPS_PROXY --proxy-bypass-list=<-loopback>"
elif [ -n "$HTTP_PROXY" ]; then proxy="--proxy-server=$HTTP_PROXY --proxy-bypass-list=<-loopback>"; fi
exec /usr/bin/chromium --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --log-level=3 \\
  --no-default-browser-check --disable-background-networking --disable-component-update --password-store=basic \\
  --user-data-dir="\${NOOK_BROWSER_PROFILE:-/tmp/chromium-profile}" $proxy "$@"
`;

/**
 * The screenshot tool: the whole screen as PNG on stdout. scrot (C, imlib2) answers in tens
 * of milliseconds; a Pillow script measured about twice that, most of it Python starting
 * (bench/README.md).
 */
const SCREENSHOT = `#!/bin/sh
exec scrot --overwrite --silent /dev/stdout
`;

/**
 * The screenshot helper, started by the supervisor and owned by the sandbox: it imports
 * Pillow once and answers each connection on its unix socket with one PNG of the screen
 * (Pillow's XCB grab, about 6 ms at 1280x800; rows unfiltered and zlib level 1, about 4 ms,
 * where Pillow's own PNG encoder took 22 ms at level 1 for a 6% smaller file). The daemon reaches it through the agent's exec of
 * `socat` (src/core/desktop.ts), so the answer is bounded like any other exec output;
 * without the helper the daemon falls back to nook-screenshot. Errors close the connection
 * with nothing written (the daemon then falls back too).
 */
const GRAB = `#!/usr/bin/python3
# nook: long-lived screenshot helper of a desktop sandbox (started by nook-desktop).
import os, socketserver, struct, sys, zlib
from PIL import ImageGrab

SOCKET = "${DESKTOP.grabSocket}"
DISPLAY = os.environ.get("DISPLAY", "${DESKTOP.display}")

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

def png(img):
    """8-bit RGB PNG, rows unfiltered, zlib level 1 (Pillow's adaptive filter costs 4x the deflate)."""
    w, h = img.size
    raw = img.tobytes()
    stride = w * 3
    rows = bytearray((stride + 1) * h)  # a 0 (filter: none) before every row
    for y in range(h):
        rows[y * (stride + 1) + 1:(y + 1) * (stride + 1)] = raw[y * stride:(y + 1) * stride]
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")

class Shot(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(10)
        try:
            self.request.sendall(png(ImageGrab.grab(xdisplay=DISPLAY).convert("RGB")))
        except Exception as e:  # the caller falls back to nook-screenshot
            print("nook-grab:", e, file=sys.stderr, flush=True)

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

if os.path.exists(SOCKET):
    os.unlink(SOCKET)
old = os.umask(0o077)
server = Server(SOCKET, Shot)
os.umask(old)
print("nook-grab: serving on", SOCKET, flush=True)
server.serve_forever()
`;

export const DESKTOP_IMAGE = {
  cacheVersion: 'desktop-bookworm-3',
  packages: [
    'chromium', 'fonts-dejavu-core', 'python3', 'dbus-x11',
    'xvfb', 'xfonts-base', 'openbox', 'xterm', 'x11vnc', 'novnc', 'websockify',
    'xdotool', 'wmctrl', 'x11-utils', 'scrot', 'python3-pil', 'procps', 'socat',
    // Virtual packages and alternatives debootstrap does not resolve by itself (websockify's chain).
    'python3-cffi-backend', 'libblas3', 'liblapack3',
  ],
  marker: 'usr/local/bin/nook-desktop',
  files: {
    'usr/local/bin/nook-desktop': [0o755, SUPERVISOR],
    'usr/local/bin/chromium-desktop': [0o755, CHROMIUM_DESKTOP],
    'usr/local/bin/nook-screenshot': [0o755, SCREENSHOT],
    'usr/local/bin/nook-grab': [0o755, GRAB],
  } as Record<string, [number, string]>,
};

# A real browser as a websocket client: Debian's chromium, headless, loads a
# page served from 127.0.0.1 whose script talks to glockd's --ws port; the
# test reads what the page saw from the DOM chromium dumps (--dump-dom),
# and checks the lock table from a TCP client meanwhile.
#
# The page's load event is held back by an <img> that the test's HTTP
# server answers only once the page has reported (or a bounded time has
# passed), so --dump-dom dumps the DOM after the script is done; the
# report is also the moment for the TCP checks while the page still holds
# its websocket open.
#
# Exits 77 (skip, for meson) when chromium is missing and cannot be installed.
#
# Run with /usr/bin/python3.

import html
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TIMEOUT, free_port, g_ok, i_no, i_yes, tail  # noqa: E402
from test_websocket import WsTestCase  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tlscerts  # noqa: E402  (tests/tlscerts.py)

CHROMIUM = os.environ.get("GLOCKD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_TIMEOUT = 20.0   # one chromium run, start to exit
PAGE_TIMEOUT_MS = 12000   # the page gives up and reports by then


def ensure_chromium():
    """Path of a runnable chromium, installing Debian's package if needed;
    exits 77 (skip) with a reason when there is none."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    why = "%s not found" % CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            r = subprocess.run(["apt-get", "install", "-y", "chromium"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=600,
                               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if r.returncode == 0 and os.access(CHROMIUM, os.X_OK):
                return CHROMIUM
            why += "; apt-get install -y chromium failed (exit %d): %s" % (
                r.returncode, r.stdout.decode("utf-8", "replace")[-500:])
        except (OSError, subprocess.TimeoutExpired) as e:
            why += "; apt-get install -y chromium failed: %s" % e
    else:
        why += "; not root or no apt-get, so it cannot be installed"
    sys.stderr.write("SKIP test_browser.py: %s\n" % why)
    sys.exit(77)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pending</title></head>
<body>
<pre id="out"></pre>
<script>
const out = [];
let finished = false;
function done() {
  if (finished) return;
  finished = true;
  document.getElementById('out').textContent = JSON.stringify(out);
  document.title = 'done';
  fetch('/report', {method: 'POST', body: JSON.stringify(out)});
}
setTimeout(() => { out.push('page-timeout'); done(); }, %(page_timeout)d);
let ws;
try {
  ws = new WebSocket('%(scheme)s://127.0.0.1:%(ws_port)d/');
} catch (e) {
  out.push('exception:' + e);
  done();
}
ws.onerror = () => { out.push('error'); };
ws.onclose = (ev) => { out.push('close:' + ev.code); done(); };
%(script)s
</script>
<img src="/wait" alt="">
</body></html>
"""

# Sends each request after the previous answer; reports after the last one
# with the socket still open (the lock still held).
SEQUENCE = """
const requests = %s;
let next = 0;
function send_next() {
  if (next < requests.length) ws.send(requests[next++]);
  else done();
}
ws.onopen = () => { out.push('open'); send_next(); };
ws.onmessage = (ev) => { out.push(typeof ev.data === 'string' ? ev.data : 'binary'); send_next(); };
"""

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
       b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


class PageServer:
    """Serves the page on 127.0.0.1:free port from a thread; /report stores
    what the page posts, /wait holds the page's load event until released."""

    def __init__(self, page, port=0):
        self.page = page.encode("utf-8")
        self.report = None
        self.reported = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, ctype, body):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/":
                    self.reply("text/html; charset=utf-8", outer.page)
                elif self.path == "/wait":
                    outer.release.wait(CHROMIUM_TIMEOUT)
                    self.reply("image/gif", GIF)
                else:
                    self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.path == "/report":
                    try:
                        outer.report = json.loads(body.decode("utf-8"))
                    except ValueError:
                        outer.report = ["unparsable report", body.decode("latin-1")]
                    outer.reported.set()
                    self.reply("text/plain", b"ok\n")
                else:
                    self.send_error(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(TIMEOUT)


class Chromium:
    def __init__(self, tmpdir, url, extra_args=()):
        self.profile = os.path.join(tmpdir, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.out_path = os.path.join(tmpdir, "chromium.stdout")
        self.err_path = os.path.join(tmpdir, "chromium.stderr")
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-dev-shm-usage", "--user-data-dir=" + self.profile] + \
            list(extra_args) + ["--dump-dom", url]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True)
        self.started = time.monotonic()

    def remaining(self):
        return max(0.0, self.started + CHROMIUM_TIMEOUT - time.monotonic())

    def wait(self):
        """Exit code; kills chromium (its own process group) if it overruns."""
        try:
            return self.proc.wait(self.remaining())
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("chromium still running after %.0f s; stderr:\n%s"
                                 % (CHROMIUM_TIMEOUT, tail(self.stderr())))

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group it leads
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class BrowserTestCase(WsTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ensure_chromium()

    def run_page(self, d, script, while_open=None, http_port=0, scheme="ws", chromium_args=()):
        """Load a page running `script` against d; returns (what the page
        reported, what the dumped DOM shows). while_open() runs once the page
        reported, before its load event and so before chromium exits."""
        page = PAGE % {"ws_port": d.ws_port, "script": script,
                       "page_timeout": PAGE_TIMEOUT_MS, "scheme": scheme}
        with PageServer(page, http_port) as srv:
            url = "http://127.0.0.1:%d/" % srv.port
            chrome = Chromium(self.tmp, url, chromium_args)
            self.addCleanup(chrome.kill)
            self.page_origin = "http://127.0.0.1:%d" % srv.port
            try:
                if not srv.reported.wait(chrome.remaining()):
                    chrome.kill()
                    self.fail("the page never reported (chromium exit %r); stderr:\n%s\n"
                              "stdout:\n%s" % (chrome.proc.poll(), tail(chrome.stderr()),
                                               tail(chrome.stdout())))
                if while_open is not None:
                    while_open(srv.report)
            finally:
                srv.release.set()
            rc = chrome.wait()
        dom = chrome.stdout()
        self.chromium_stderr = chrome.stderr()
        m = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
        if rc != 0 or not m:
            self.fail("chromium exit %d, DOM:\n%s\nstderr:\n%s"
                      % (rc, tail(dom), tail(chrome.stderr())))
        self.assertIn("<title>done</title>", dom)
        return srv.report, json.loads(html.unescape(m.group(1)))


class BrowserClient(BrowserTestCase):

    def test_page_takes_a_lock_over_websocket(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        before = t.q()
        seen = {}

        def while_open(report):
            # The page has its answers and keeps its socket open.
            seen["i"] = t.req("i browserlock")
            seen["g"] = t.req("g browserlock")

        report, dom = self.run_page(d, SEQUENCE % json.dumps(["g browserlock",
                                                              "i browserlock"]), while_open)
        want = ["open", g_ok("browserlock").decode(), i_yes("browserlock").decode()]
        self.assertEqual(dom, want)
        self.assertEqual(report, want)
        self.assertEqual(seen["i"], i_yes("browserlock"))
        self.assertEqual(seen["g"], b"0 Lock Get Failure: browserlock\n")
        # chromium exited: its connection is gone and the lock orphaned.
        self.settle(t, orphans=before["orphans"] + 1, connections=before["connections"])
        self.assertEqual(t.req("i browserlock"), i_no("browserlock"))
        self.assertEqual(t.req("g browserlock"), g_ok("browserlock"))

    def test_refused_origin(self):
        d = self.ws_daemon(ws_args=["--ws-origin", "https://only.example"])
        t = self.tcp(d)
        self.assertEqual(t.req("g bystander"), g_ok("bystander"))
        report, dom = self.run_page(d, SEQUENCE % json.dumps(["g browserlock"]))
        # The handshake got 403: the browser fires error, then close 1006.
        self.assertEqual(dom, ["error", "close:1006"])
        self.assertEqual(report, dom)
        self.wait_log_line(d, "warning", self.page_origin)
        self.assertEqual(t.req("i browserlock"), i_no("browserlock"))
        self.assertEqual(t.req("i bystander"), i_yes("bystander"))

    def test_allowed_origin(self):
        # The page's exact origin on the allowlist: served. The same host
        # with another port is a different origin and does not count.
        port = free_port()
        d = self.ws_daemon(ws_args=["--ws-origin", "https://only.example",
                                    "--ws-origin", "http://127.0.0.1:%d" % (port ^ 1),
                                    "--ws-origin", "http://127.0.0.1:%d" % port])
        report, dom = self.run_page(d, SEQUENCE % json.dumps(["g browserlock", "i browserlock"]),
                                    http_port=port)
        self.assertEqual(dom, ["open", g_ok("browserlock").decode(),
                               i_yes("browserlock").decode()])

    def test_lock_names_that_are_not_utf8(self):
        # A TCP client holds a name that is not UTF-8; the page asks for the
        # dump. The answer must reach the page (RFC 6455 8.1: a text
        # message with invalid UTF-8 makes the browser fail the connection).
        d = self.ws_daemon(args=["--dump"])
        t = self.tcp(d)
        self.assertEqual(t.req(b"g \xffname"), g_ok(b"\xffname"))
        report, dom = self.run_page(d, SEQUENCE % json.dumps(["d", "i after"]))
        self.assertEqual(dom[0], "open", "the page saw %r" % dom)
        self.assertEqual(dom[2:], [i_no("after").decode()], "the page saw %r" % dom)
        self.assertNotIn("error", dom)


class BrowserOverWss(BrowserTestCase):
    """--ws-ssl: the page's wss:// socket, TLS with the test PKI's server
    certificate (chromium told to accept its unknown CA)."""

    def test_page_takes_a_lock_over_wss(self):
        pki = tlscerts.make_pki(os.path.join(self.tmp, "pki"))
        d = self.ws_daemon(ws_args=["--ws-ssl", "--ssl-cert", pki["server"],
                                    "--ssl-key", pki["server_key"]])
        t = self.tcp(d)  # the TCP port stays plain without --ssl
        seen = {}

        def while_open(report):
            seen["i"] = t.req("i browserlock")

        report, dom = self.run_page(d, SEQUENCE % json.dumps(["g browserlock",
                                                              "i browserlock"]),
                                    while_open, scheme="wss",
                                    chromium_args=["--ignore-certificate-errors"])
        want = ["open", g_ok("browserlock").decode(), i_yes("browserlock").decode()]
        self.assertEqual(dom, want)
        self.assertEqual(seen["i"], i_yes("browserlock"))
        self.wait_answer(t, "i browserlock", i_no("browserlock"))  # orphaned on exit


if __name__ == "__main__":
    unittest.main()

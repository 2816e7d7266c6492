#!/usr/bin/python3
# TLS on the TCP port (--ssl) and on the websocket/HTTP port (--ws-ssl),
# issue 12, against the real daemon: Python's ssl module and the
# `openssl s_client` command as clients, a throw-away PKI from
# tests/tlscerts.py (made once for the whole file: it takes seconds on a
# loaded machine; tests that change a file work on copies).
#
# Besides the well-behaved clients: refused handshakes (no certificate,
# another CA's, a revoked one), stalled handshakes, plain TCP on the TLS
# port, reload on SIGHUP, refusals at start, sessions, the memory budget,
# and the hostile checks of the isolation issue rerun against the TLS port
# (stalls, garbage records, renegotiation, a burst of handshakes, a
# client that never reads). Throughout, a well-behaved TLS client holding
# a lock must keep it and keep being answered. No timed assertion: every
# wait is for a state (a log line, a metric, an EOF) with the harness's
# generous deadline.
#
# Run with /usr/bin/python3 (python3-websockets is a Debian package).

import asyncio
import os
import random
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from harness import (TIMEOUT, Client, Daemon, DaemonTestCase, free_port, tail,  # noqa: E402
                     g_fail, g_ok, i_no, i_yes, r_ok, sg_ok)
import ports  # noqa: E402  (tests/ports.py)
import tlscerts  # noqa: E402  (tests/tlscerts.py)

try:
    import websockets
    import websockets.client
    import websockets.exceptions
except ImportError:  # pragma: no cover
    websockets = None

OPENSSL = "openssl"
TLS_ALERT = 0x15  # TLS record content type of an alert


# --------------------------------------------------------------------------
# The daemon


class TlsDaemon(Daemon):
    """A glockd with the given TLS flags, a TCP port on 127.0.0.1 (and ::1
    with ipv6) and a websocket/HTTP port (for /metrics; TLS with --ws-ssl),
    both on free ports picked anew on each start attempt."""

    def __init__(self, tmpdir, tls_args, ws_tls=False, **kw):
        super().__init__(tmpdir, argv=TlsDaemon._argv, **kw)
        self.tls_args = list(tls_args)
        self.ws_tls = ws_tls
        self.ws_port = 0

    @staticmethod
    def _argv(d):
        a = ["--port", str(d.port), "--bind", "127.0.0.1"]
        if d.ipv6:
            a += ["--bind", "::1"]
        a += ["--ws", str(d.ws_port)]
        if d.unix_path:
            a += ["--unix", d.unix_path]
        return a + d.tls_args

    def spawn(self):
        self.ws_port = free_port()
        super().spawn()


def peer_addr(sock):
    """The ADDR the daemon gives the connection whose client end is sock."""
    h, p = sock.getsockname()[:2]
    return ("[%s]:%d" if ":" in h else "%s:%d") % (h, p)


def read_to_close(sock, timeout=TIMEOUT):
    """Bytes received until the daemon closes the connection (EOF or reset).
    The timeout is only there to never hang."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("the daemon did not close the connection; got %r" % data[:200])
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            raise AssertionError("the daemon did not close the connection; got %r" % data[:200])
        if not chunk:
            return data
        data += chunk


def client_hello(host="127.0.0.1"):
    """The bytes of a real TLS ClientHello (from Python's ssl, in memory)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:10]
    return hello


class SClient:
    """An `openssl s_client` process; stdout read with a deadline."""

    def __init__(self, test, args):
        self.err_path = os.path.join(test.tmp, "s_client.%s.stderr" % os.urandom(4).hex())
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([OPENSSL, "s_client"] + args, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        test.addCleanup(self.kill)
        self.out = b""
        self.eof = False

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def read_until(self, done, what):
        """Reads stdout until done(all stdout so far) or its end; returns
        whether done() came true."""
        deadline = time.monotonic() + TIMEOUT
        fd = self.proc.stdout.fileno()
        while not done(self.out):
            if self.eof:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("s_client: no %s within %.0f s; stdout %r; stderr %r"
                                     % (what, TIMEOUT, self.out[-2000:], self.stderr()[-2000:]))
            r, _, _ = select.select([fd], [], [], remaining)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.eof = True
                self.out += chunk
        return True

    def expect(self, line):
        if not self.read_until(lambda out: line in out, repr(line)):
            raise AssertionError("s_client ended before %r; stdout %r; stderr %r"
                                 % (line, self.out[-2000:], self.stderr()[-2000:]))

    def wait_stderr(self, text, count=1):
        """Waits until stderr holds text count times (s_client acts on a
        command letter only at the start of what one read of stdin got, and
        drops the rest: the next line goes only once this one is done)."""
        deadline = time.monotonic() + TIMEOUT
        while self.stderr().count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("s_client: %r not seen %d times; stderr %r"
                                     % (text, count, self.stderr()[-2000:]))
            time.sleep(0.01)

    def wait_end(self):
        """Reads stdout to its end and waits for the process; returns its rc."""
        self.read_until(lambda out: False, "end of output")
        try:
            return self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("s_client closed stdout but did not exit")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass


# --------------------------------------------------------------------------
# Base test case


_PKI = {}


def the_pki():
    """The test PKI, made on first use and shared by every class of this
    file (a few seconds on a loaded machine: once, not once per class).
    Tests that change a file (reload) work on copies."""
    if not _PKI:
        tmp = tempfile.TemporaryDirectory(prefix="glockd-pki-")
        unittest.addModuleCleanup(tmp.cleanup)
        _PKI.update(tlscerts.make_pki(tmp.name))
    return dict(_PKI)


class TlsCase(DaemonTestCase):
    """Starts TLS daemons and clients with the test PKI."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = the_pki()

    # -- daemons

    def tls_daemon(self, extra=(), tcp_tls=True, ws_tls=False, cert=None, key=None, **kw):
        """--ssl (with --ssl-ca the test CA) unless tcp_tls is False;
        --ws-ssl with ws_tls; extra flags appended."""
        p = self.pki
        args = ["--ssl"] if tcp_tls else []
        if ws_tls:
            args.append("--ws-ssl")
        args += ["--ssl-cert", cert or p["server"], "--ssl-key", key or p["server_key"]]
        if tcp_tls:
            args += ["--ssl-ca", p["ca"]]
        d = TlsDaemon(self.tmp, args + list(extra), ws_tls=ws_tls, **kw)
        self.addCleanup(self._finish, d)
        d.start()
        return d

    # -- clients

    def context(self, cert="client", version=None, ca="ca"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.pki[ca])
        if cert:
            ctx.load_cert_chain(self.pki[cert], self.pki[cert + "_key"])
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def tls(self, d, cert="client", host="127.0.0.1", version=None, ctx=None, **wrap):
        """A TLS client past its handshake, with the harness's Client API."""
        ctx = ctx or self.context(cert, version)
        raw = socket.create_connection((host, d.port), timeout=TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s = ctx.wrap_socket(raw, server_hostname=host, **wrap)
        except BaseException:
            raw.close()
            raise
        c = Client(s, "tcp6" if ":" in host else "tcp")
        self.addCleanup(c.close)
        return c

    def raw(self, d, host="127.0.0.1"):
        """A plain TCP connection to the (TLS) TCP port."""
        s = socket.create_connection((host, d.port), timeout=TIMEOUT)
        self.addCleanup(s.close)
        return s

    def bio_client(self, d, cert="client"):
        """A TLS client over memory BIOs on a raw socket, its handshake
        done: (raw socket, SSLObject, incoming BIO, outgoing BIO), so a
        test decides what goes out in which segment."""
        ctx = self.context(cert)
        raw = self.raw(d)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                raw.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = raw.recv(65536)
                self.assertNotEqual(chunk, b"", "closed during the handshake")
                incoming.write(chunk)
        return raw, obj, incoming, outgoing

    def refused(self, d, ctx, host="127.0.0.1"):
        """Connects with ctx and tries to take a lock; the daemon must
        refuse the handshake: the client's handshake fails, or (TLS 1.3,
        where the client is done before the server has checked its
        certificate) the next read gets an alert or the end of the
        connection, never an answer. Returns the client's ADDR."""
        raw = self.raw(d, host)
        addr = peer_addr(raw)
        try:
            s = ctx.wrap_socket(raw, server_hostname=host)
        except (ssl.SSLError, ConnectionError):
            return addr
        self.addCleanup(s.close)
        try:
            s.sendall(b"g refused\n")
            s.settimeout(TIMEOUT)
            got = s.recv(65536)
        except (ssl.SSLError, ConnectionError):
            return addr
        self.assertEqual(got, b"", "the daemon answered a client it should have refused")
        return addr

    def holder(self, d, name="held", cert="client2"):
        """A well-behaved TLS client that holds `name`."""
        c = self.tls(d, cert)
        self.assertEqual(c.req("g " + name), g_ok(name))
        return c

    def still_served(self, c, name="held"):
        """c still holds `name` and is still answered."""
        self.assertEqual(c.req("g " + name), g_ok(name))
        self.assertEqual(c.req("i " + name), i_yes(name))
        self.assertEqual(c.req("i nobody-holds-this"), i_no("nobody-holds-this"))

    # -- s_client

    def s_client(self, d, cert="client", host="127.0.0.1", extra=(), quiet=True):
        hp = "[%s]:%d" % (host, d.port) if ":" in host else "%s:%d" % (host, d.port)
        args = ["-connect", hp, "-CAfile", self.pki["ca"], "-verify_return_error"]
        if cert:
            args += ["-cert", self.pki[cert], "-key", self.pki[cert + "_key"]]
        if quiet:
            args += ["-quiet", "-no_ign_eof"]  # only the answers on stdout; EOF on stdin ends it
        return SClient(self, args + list(extra))

    # -- metrics (the ws port; https with --ws-ssl)

    def metrics_text(self, d):
        if d.ws_tls:
            ctx = self.context("client")
            url = "https://127.0.0.1:%d/metrics" % d.ws_port
            with urllib.request.urlopen(url, timeout=TIMEOUT, context=ctx) as r:
                return r.read().decode()
        url = "http://127.0.0.1:%d/metrics" % d.ws_port
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.read().decode()

    def metric(self, d, name):
        for line in self.metrics_text(d).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail("no %s in /metrics" % name)

    def settle_metric(self, d, name, value, at_least=False):
        deadline = time.monotonic() + TIMEOUT
        while True:
            now = self.metric(d, name)
            if (now >= value) if at_least else (now == value):
                return now
            if time.monotonic() > deadline:
                self.fail("%s never reached %r (now %r)" % (name, value, now))
            time.sleep(0.01)

    def settle_sum(self, d, names, value):
        deadline = time.monotonic() + TIMEOUT
        while True:
            text = self.metrics_text(d)
            now = sum(float(ln.split()[1]) for ln in text.splitlines()
                      if ln.split(" ")[0] in names)
            if now == value:
                return
            if time.monotonic() > deadline:
                self.fail("%s never summed to %r (now %r)" % (names, value, now))
            time.sleep(0.01)

    # -- logs

    def log_lines(self, d, *parts):
        return [ln for ln in d.stderr().splitlines() if all(p in ln for p in parts)]

    def wait_log_lines(self, d, *parts, count=1):
        """Waits until `count` stderr lines each contain every one of parts."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            got = self.log_lines(d, *parts)
            if len(got) >= count:
                return got
            if not d.running() or time.monotonic() > deadline:
                self.fail("never %d log lines with %r; stderr:\n%s" % (count, parts,
                                                                     tail(d.stderr())))
            time.sleep(0.02)


def cn_of(sock):
    """The subject CN of the server certificate sock verified."""
    for rdn in sock.getpeercert()["subject"]:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


# --------------------------------------------------------------------------
# Well-behaved clients


class WellBehaved(TlsCase):

    def test_python_clients_lock_unlock_share_and_wait(self):
        d = self.tls_daemon()
        a, b = self.tls(d, "client"), self.tls(d, "client2")
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(b.req("g x"), g_fail("x"))
        self.assertEqual(b.req("i x"), i_yes("x"))
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        self.assertEqual(b.req("sg s"), sg_ok(2, "s"))
        # A w waiting across two TLS connections: b gets x when a lets go.
        b.send(b"w 600000 x\n")
        self.settle_metric(d, "glockd_waiters", 1)
        self.assertEqual(a.req("r x"), r_ok("x"))
        self.assertEqual(b.readline(), g_ok("x"))
        self.assertEqual(a.req("g x"), g_fail("x"))
        # A TLS connection is named and counted like a TCP one.
        self.assertEqual(a.req("me"), b"1 %s %s\n" % ((a.addr().encode(),) * 2))
        self.settle(a, connections=2)
        self.assertEqual(self.metric(d, 'glockd_transport_connections{transport="tcp"}'), 2)
        self.assertEqual(self.metric(d, "glockd_tls_connections"), 2)
        self.assertEqual(self.metric(d, "glockd_tls_handshakes_total"), 2)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        a.close()
        self.settle_metric(d, "glockd_tls_connections", 1)
        self.settle(b, connections=1)

    def test_tls_1_2_client(self):
        d = self.tls_daemon()
        a = self.tls(d, version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(a.sock.version(), "TLSv1.2")
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("r x"), r_ok("x"))

    def test_tls_1_1_and_older_are_refused(self):
        d = self.tls_daemon()
        ctx = self.context("client")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        self.refused(d, ctx)
        # The daemon saw the hello and refused it (not our side giving up).
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1)
        b = self.tls(d)
        self.assertEqual(b.req("i x"), i_no("x"))

    def test_openssl_s_client_takes_a_lock_and_its_end_frees_it(self):
        d = self.tls_daemon()
        other = self.tls(d, "client2")
        s = self.s_client(d)
        s.send(b"g x\n")
        s.expect(g_ok("x"))
        self.assertEqual(other.req("g x"), g_fail("x"))
        s.send(b"i x\n")
        s.expect(i_yes("x"))
        other.send(b"w 600000 x\n")
        self.settle_metric(d, "glockd_waiters", 1)
        s.close_stdin()  # s_client says close_notify and leaves: the lock is orphaned
        self.assertEqual(other.readline(), g_ok("x"))
        s.wait_end()

    def test_client_close_notify_after_a_request_still_gets_its_answer(self):
        # The client sends a request and its close_notify at once (like a
        # TLS `printf ... | nc -N`): the answer comes, then the daemon's own
        # close_notify before its FIN.
        d = self.tls_daemon()
        raw, obj, incoming, outgoing = self.bio_client(d)
        # Our Finished, the request and our close_notify in one segment.
        obj.write(b"i cn\n")
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(outgoing.read())
        incoming.write(read_to_close(raw))
        incoming.write_eof()
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
            except ssl.SSLZeroReturnError:
                break  # the daemon's close_notify
            except ssl.SSLEOFError:
                self.fail("FIN without close_notify after %r" % got)
            except ssl.SSLWantReadError:
                self.fail("no close_notify after %r" % got)
            if not chunk:
                break
            got += chunk
        self.assertEqual(got, i_no("cn"))

    def test_fin_without_close_notify_after_requests_gets_the_answers(self):
        # As on plain TCP (`printf ... | nc -N`): requests sent before the
        # end of the stream are answered.
        # Then close_notify before the FIN (docs/PROTOCOL.md): with ragged
        # EOFs not suppressed, a bare FIN would raise SSLEOFError here.
        d = self.tls_daemon()
        c = self.tls(d, suppress_ragged_eofs=False)
        c.send(b"".join(b"i k%d\n" % k for k in range(100)))
        with socket.socket(fileno=os.dup(c.sock.fileno())) as dup:
            dup.shutdown(socket.SHUT_WR)
        self.assertEqual(c.lines(100), [i_no("k%d" % k) for k in range(100)])
        self.assertEqual(c.sock.recv(100), b"")

    def test_a_big_pipelined_batch_is_answered_in_order(self):
        # Far more than one record and one turn, sent while reading (one
        # thread, memory BIOs): every answer, in order, through TLS.
        d = self.tls_daemon()
        probe = self.tls(d, "client2")
        raw, obj, incoming, outgoing = self.bio_client(d)
        n = 50000
        obj.write(b"".join(b"i k%d\n" % k for k in range(n)))
        out = memoryview(outgoing.read())
        got = bytearray()
        want = sum(len(i_no("k%d" % k)) for k in range(n))
        raw.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 3 * TIMEOUT
        while len(got) < want:
            self.assertLess(time.monotonic(), deadline,
                            "sent %d/%d, got %d/%d bytes" % (sent, len(out), len(got), want))
            r, w, _ = select.select([raw], [raw] if sent < len(out) else [], [], 1.0)
            if w:
                try:
                    sent += raw.send(out[sent:sent + 65536])
                except BlockingIOError:
                    pass
            if r:
                try:
                    chunk = raw.recv(262144)
                except BlockingIOError:
                    continue
                self.assertNotEqual(chunk, b"", "closed after %d bytes" % len(got))
                incoming.write(chunk)
                while True:
                    try:
                        got += obj.read(1 << 20)
                    except ssl.SSLWantReadError:
                        break
        raw.setblocking(True)
        lines = bytes(got).split(b"\n")
        self.assertEqual(lines[0] + b"\n", i_no("k0"))
        self.assertEqual(lines[n // 2] + b"\n", i_no("k%d" % (n // 2)))
        self.assertEqual(lines[n - 1] + b"\n", i_no("k%d" % (n - 1)))
        self.assertEqual(len(lines), n + 1)
        self.assertEqual(probe.req("i probe"), i_no("probe"))

    def test_key_update_from_the_client(self):
        # TLS 1.3 KeyUpdate asking for ours too (s_client's "K"): the
        # connection goes on.
        d = self.tls_daemon()
        s = self.s_client(d, quiet=False, extra=["-tls1_3"])
        s.send(b"g ku\n")
        s.expect(g_ok("ku"))
        s.send(b"K\n")
        s.wait_stderr("KEYUPDATE")
        s.send(b"i ku\n")
        s.expect(i_yes("ku"))
        s.send(b"k\n")  # without asking for ours
        s.wait_stderr("KEYUPDATE", 2)
        s.send(b"r ku\n")
        s.expect(r_ok("ku"))

    def test_over_ipv4_and_ipv6(self):
        if not ports.have_ipv6():
            self.skipTest("no ::1 here")
        d = self.tls_daemon(ipv6=True)
        a = self.tls(d, host="127.0.0.1")
        b = self.tls(d, "client2", host="::1")
        self.assertEqual(b.req("g v6"), g_ok("v6"))
        self.assertEqual(a.req("g v6"), g_fail("v6"))
        self.assertEqual(b.req("me"), b"1 %s %s\n" % ((b.addr().encode(),) * 2))
        self.assertTrue(b.addr().startswith("[::1]:"), b.addr())
        s6 = self.s_client(d, host="::1")
        s6.send(b"g x6\n")
        s6.expect(g_ok("x6"))
        s4 = self.s_client(d, "client2", host="127.0.0.1")
        s4.send(b"g x6\ng x4\n")
        s4.expect(g_fail("x6") + g_ok("x4"))
        self.assertEqual(b.req("i x4"), i_yes("x4"))


class Refusals(TlsCase):
    """The handshake fails; it is logged with the peer and counted; a TLS
    client holding a lock meanwhile keeps it and is answered."""

    def check_refused(self, ctx, extra=()):
        d = self.tls_daemon(extra)
        held = self.holder(d)
        addr = self.refused(d, ctx)
        self.wait_log_lines(d, addr + ": TLS handshake failed")
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1)
        self.still_served(held)
        other = self.tls(d)
        self.assertEqual(other.req("g held"), g_fail("held"))
        self.settle_metric(d, "glockd_tls_connections", 2)
        return d

    def test_no_client_certificate(self):
        self.check_refused(self.context(cert=None))

    def test_no_client_certificate_tls_1_2(self):
        self.check_refused(self.context(cert=None, version=ssl.TLSVersion.TLSv1_2))

    def test_client_certificate_from_another_ca(self):
        self.check_refused(self.context("other_client"))

    def test_the_server_certificate_as_a_client_certificate(self):
        # Signed by the CA, but for serverAuth only: not a client's.
        self.check_refused(self.context("server"))

    def test_revoked_client_certificate(self):
        d = self.check_refused(self.context("revoked"), ["--ssl-crl", self.pki["crl"]])
        # Only the revoked one: the others of the CA still get in.
        c = self.tls(d, "client")
        self.assertEqual(c.req("i held"), i_yes("held"))

    def test_client_that_does_not_trust_the_server(self):
        # The client's side fails (unknown CA): the daemon counts a failed
        # handshake and goes on.
        d = self.tls_daemon()
        held = self.holder(d)
        ctx = self.context("client", ca="other_ca")
        raw = self.raw(d)
        with self.assertRaises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        raw.close()
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1)
        self.still_served(held)

    def test_plain_tcp_on_the_tls_port_gets_no_answer_and_unix_stays_plain(self):
        d = self.tls_daemon(["--ssl-handshake-timeout", "1"], unix=True)
        held = self.holder(d)
        # `g x\n` is shorter than a TLS record header: dropped, whether on
        # the header (failure) or on the timeout.
        plain = self.raw(d)
        addr = peer_addr(plain)
        plain.sendall(b"g x\n")
        got = read_to_close(plain)
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)
        self.assertNotIn(b"Lock", got)
        self.wait_log_lines(d, addr + ": TLS handshake ")  # failed, or not finished
        # Several requests: more than a record header, a failed handshake.
        # (Its log line may fall to the rate limit.)
        plain2 = self.raw(d)
        plain2.sendall(b"g x\ni x\nq\n")
        got = read_to_close(plain2)
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)
        self.assertNotIn(b"Lock", got)
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1, at_least=True)
        self.settle_sum(d, ["glockd_tls_handshake_failures_total",
                            "glockd_tls_handshake_timeouts_total"], 2)
        self.assertEqual(held.req("i x"), i_no("x"))  # nothing was taken
        # The unix socket never speaks TLS.
        u = self.client(d, "unix")
        self.assertEqual(u.req("g x"), g_ok("x"))
        self.assertEqual(held.req("i x"), i_yes("x"))
        self.still_served(held)


class Stalls(TlsCase):
    """A handshake left unfinished is dropped after --ssl-handshake-timeout."""

    def check_dropped(self, first_bytes):
        d = self.tls_daemon(["--ssl-handshake-timeout", "1"])
        # The holder finished its handshake before the stall began, and is
        # idle as long: only unfinished handshakes time out.
        held = self.holder(d)
        stall = self.raw(d)
        addr = peer_addr(stall)
        if first_bytes:
            stall.sendall(first_bytes)
        got = read_to_close(stall)  # the drop: EOF, with at most an alert
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)
        self.wait_log_lines(d, addr + ": TLS handshake not finished within 1 s "
                               "(--ssl-handshake-timeout); dropped")
        self.settle_metric(d, "glockd_tls_handshake_timeouts_total", 1)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        self.still_served(held)

    def test_silent_connection_is_dropped(self):
        self.check_dropped(b"")

    def test_half_a_client_hello_is_dropped(self):
        hello = client_hello()
        self.check_dropped(hello[:len(hello) // 2])

    def test_half_a_record_header_is_dropped(self):
        self.check_dropped(b"\x16\x03")

    def test_stall_on_the_wss_port_is_dropped(self):
        d = self.tls_daemon(["--ssl-handshake-timeout", "1"], ws_tls=True)
        held = self.holder(d)
        stall = socket.create_connection(("127.0.0.1", d.ws_port), timeout=TIMEOUT)
        self.addCleanup(stall.close)
        stall.sendall(client_hello()[:50])
        got = read_to_close(stall)
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)
        self.settle_metric(d, "glockd_tls_handshake_timeouts_total", 1)
        self.still_served(held)


class Reload(TlsCase):

    def copy(self, src, dst):
        shutil.copyfile(src, dst)

    def test_sighup_rereads_the_certificate_and_a_bad_file_keeps_the_old(self):
        p = self.pki
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        self.copy(p["server"], cert)
        self.copy(p["server_key"], key)
        d = self.tls_daemon(cert=cert, key=key)
        old = self.tls(d)
        self.assertEqual(cn_of(old.sock), "glockd-test-server")
        self.assertEqual(old.req("g held"), g_ok("held"))
        # A renewed certificate: new connections get it, open ones go on.
        self.copy(p["server2"], cert)
        self.copy(p["server2_key"], key)
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log_lines(d, "reloaded TLS certificates")
        new = self.tls(d, "client2")
        self.assertEqual(cn_of(new.sock), "glockd-test-server-2")
        self.still_served(old)
        self.assertEqual(new.req("g held"), g_fail("held"))
        self.assertEqual(self.metric(d, "glockd_tls_reloads_total"), 1)
        self.assertEqual(self.metric(d, "glockd_tls_reload_failures_total"), 0)
        # A broken key: the reload fails, says which file, keeps what it had.
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key at all\n-----END PRIVATE KEY-----\n")
        d.proc.send_signal(signal.SIGHUP)
        failed = self.wait_log_lines(d, "TLS reload failed")
        self.assertIn(key, failed[0])
        self.assertIn("keeping the certificates loaded before", failed[0])
        third = self.tls(d)
        self.assertEqual(cn_of(third.sock), "glockd-test-server-2")
        self.assertEqual(third.req("i held"), i_yes("held"))
        self.still_served(old)
        self.assertEqual(new.req("i held"), i_yes("held"))
        self.assertEqual(self.metric(d, "glockd_tls_reloads_total"), 1)
        self.assertEqual(self.metric(d, "glockd_tls_reload_failures_total"), 1)
        # A key that parses but belongs to another certificate: refused too.
        self.copy(p["client_key"], key)
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log_lines(d, "TLS reload failed", count=2)
        self.settle_metric(d, "glockd_tls_reload_failures_total", 2)
        fourth = self.tls(d)
        self.assertEqual(cn_of(fourth.sock), "glockd-test-server-2")
        # Fixed again: the next SIGHUP takes it.
        self.copy(p["server_key"], key)
        self.copy(p["server"], cert)
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log_lines(d, "reloaded TLS certificates", count=2)
        fifth = self.tls(d)
        self.assertEqual(cn_of(fifth.sock), "glockd-test-server")
        self.assertEqual(self.metric(d, "glockd_tls_reloads_total"), 2)
        self.still_served(old)


class Memory(TlsCase):

    def test_tls_connections_count_in_the_memory_budget(self):
        # The same number of idle connections costs more in TLS than on
        # the (plain) unix socket: OpenSSL's state is counted too.
        d = self.tls_daemon(["--max-memory", "64MiB"], unix=True)
        probe = self.client(d, "unix")
        self.assertEqual(probe.req("i x"), i_no("x"))
        n = 20
        base = self.metric(d, "glockd_memory_used_bytes")
        plain = [self.client(d, "unix") for _ in range(n)]
        for c in plain:
            self.assertEqual(c.req("i x"), i_no("x"))
        with_plain = self.metric(d, "glockd_memory_used_bytes")
        tls = [self.tls(d) for _ in range(n)]
        for c in tls:
            self.assertEqual(c.req("i x"), i_no("x"))
        with_tls = self.metric(d, "glockd_memory_used_bytes")
        self.assertGreater(with_tls - with_plain, with_plain - base,
                           (base, with_plain, with_tls))
        for c in tls:
            c.close()
        self.settle_metric(d, "glockd_tls_connections", 0)

    def test_idle_tls_connections_give_their_record_buffers_back(self):
        # Record buffers (two of about 17 KiB) are kept while a connection
        # is busy and freed once a sweep (about every second) finds it
        # unused; using it again takes them back.
        d = self.tls_daemon()
        n = 20
        tls = [self.tls(d) for _ in range(n)]
        for c in tls:
            self.assertEqual(c.req("i x"), i_no("x"))
        busy = self.metric(d, "glockd_tls_memory_bytes")
        want = busy - n * 16 * 1024
        deadline = time.monotonic() + TIMEOUT
        while self.metric(d, "glockd_tls_memory_bytes") > want:
            if time.monotonic() > deadline:
                self.fail("idle TLS connections kept their buffers: %r bytes, busy %r" %
                          (self.metric(d, "glockd_tls_memory_bytes"), busy))
            time.sleep(0.05)
        for c in tls:
            self.assertEqual(c.req("i x"), i_no("x"))
        self.assertGreater(self.metric(d, "glockd_tls_memory_bytes"), want)


class Shutdown(TlsCase):

    def test_sigterm_says_close_notify_to_tls_clients(self):
        d = self.tls_daemon()
        a = self.tls(d, suppress_ragged_eofs=False)  # a bare FIN would raise SSLEOFError
        self.assertEqual(a.req("g x"), g_ok("x"))
        pending = self.raw(d)  # mid-handshake: just closed
        pending.sendall(client_hello()[:20])
        d.stop(signal.SIGTERM)  # exits 0, no sanitizer report
        self.assertEqual(a.sock.recv(100), b"")
        got = read_to_close(pending)
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)


class Sessions(TlsCase):

    def test_a_kept_tls_session_is_resumed_on_another_tls_connection(self):
        # The kept session drops its TLS state, not its locks.
        d = self.tls_daemon(["--ssl-subject-name"])
        a = self.tls(d, "client")
        self.assertEqual(a.req("grace 600000"), b"1 Grace Set: 600000\n")
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        token = a.req("session")
        self.assertRegex(token, rb"^1 Session: [0-9a-f]{32}\n$")
        a.reset()
        b = self.tls(d, "client2")
        self.settle_metric(d, "glockd_tls_connections", 1)
        self.assertEqual(b.req("g x"), g_fail("x"))  # kept: still held
        self.assertEqual(b.req("resume " + token.split()[2].decode()),
                         b"1 Resume Success: 1 1\n")
        self.assertEqual(b.req("g x"), g_ok("x"))
        self.assertEqual(b.multi("d x"), [b"x: client-two\n"])  # the name is not kept
        self.assertEqual(b.req("r x"), r_ok("x"))
        b.close()
        c = self.tls(d)
        self.assertEqual(c.req("g x"), g_ok("x"))


class ReloadStorm(TlsCase):

    def test_sighups_while_clients_connect(self):
        # Contexts replaced while handshakes are under way: every one ends
        # with the certificate of one context or the other, none fails.
        d = self.tls_daemon()
        held = self.holder(d)
        for k in range(20):
            d.proc.send_signal(signal.SIGHUP)
            c = self.tls(d)
            self.assertEqual(c.req("i held"), i_yes("held"))
            c.close()
        self.settle_metric(d, "glockd_tls_reloads_total", 1, at_least=True)
        self.assertEqual(self.metric(d, "glockd_tls_reload_failures_total"), 0)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        self.still_served(held)


class ReloadCa(TlsCase):

    def test_sighup_rereads_the_client_ca(self):
        p = self.pki
        ca = os.path.join(self.tmp, "clients-ca.pem")
        shutil.copyfile(p["ca"], ca)
        d = TlsDaemon(self.tmp, ["--ssl", "--ssl-cert", p["server"], "--ssl-key",
                                 p["server_key"], "--ssl-ca", ca])
        self.addCleanup(self._finish, d)
        d.start()
        old = self.holder(d, cert="client")
        self.refused(d, self.context("other_client"))
        # Now only other_ca's clients: ca's new ones are refused, the open
        # one goes on.
        shutil.copyfile(p["other_ca"], ca)
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log_lines(d, "reloaded TLS certificates")
        ctx = self.context("other_client")
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=TIMEOUT)
        new = Client(ctx.wrap_socket(raw, server_hostname="127.0.0.1"), "tcp")
        self.addCleanup(new.close)
        self.assertEqual(new.req("i held"), i_yes("held"))
        self.refused(d, self.context("client"))
        self.still_served(old)
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 2)


class AtTheMemoryBudget(TlsCase):

    def test_new_tls_connections_wait_for_room(self):
        # A handshake costs tens of KiB: at a full budget new TLS
        # connections are refused (the client may retry); open ones go on.
        d = self.tls_daemon(["--max-memory", "1MiB"])
        a = self.tls(d)
        big = "n" * 4000
        held = []
        for k in range(2000):
            name = "%s%d" % (big, k)
            got = a.req("g " + name)
            if got == g_fail(name):
                break
            self.assertEqual(got, g_ok(name))
            held.append(name)
        else:
            self.fail("the budget never refused a lock")
        addr = self.refused(d, self.context("client"))
        self.settle_metric(d, "glockd_tls_memory_refusals_total", 1)
        self.wait_log_lines(d, addr + ": TLS connection refused: the memory budget")
        self.assertEqual(a.req("i " + held[0]), i_yes(held[0]))
        for name in held[: len(held) // 2]:
            self.assertEqual(a.req("r " + name), r_ok(name))
        b = self.tls(d, "client2")
        self.assertEqual(b.req("g " + held[0]), g_ok(held[0]))


class Orphaning(TlsCase):

    def check_freed(self, leave):
        d = self.tls_daemon()
        a, b = self.tls(d), self.tls(d, "client2")
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        b.send(b"w 600000 x\n")
        self.settle_metric(d, "glockd_waiters", 1)
        leave(a)
        self.assertEqual(b.readline(), g_ok("x"))
        self.assertEqual(b.req("sg s"), sg_ok(1, "s"))
        self.settle_metric(d, "glockd_tls_connections", 1)

    def test_close(self):
        self.check_freed(lambda c: c.close())

    def test_reset(self):
        self.check_freed(lambda c: c.reset())

    def test_killed_s_client(self):
        d = self.tls_daemon()
        s = self.s_client(d)
        s.send(b"g x\n")
        s.expect(g_ok("x"))
        b = self.tls(d, "client2")
        b.send(b"w 600000 x\n")
        self.settle_metric(d, "glockd_waiters", 1)
        s.proc.send_signal(signal.SIGKILL)
        self.assertEqual(b.readline(), g_ok("x"))


class SubjectName(TlsCase):

    def test_the_certificate_cn_is_the_registered_name(self):
        d = self.tls_daemon(["--ssl-subject-name"])
        a, b = self.tls(d, "client"), self.tls(d, "client2")
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(b.multi("d"), [b"x: client-one\n"])
        self.assertEqual(a.req("me"), b"1 %s client-one\n" % a.addr().encode())
        self.assertEqual(sorted(b.multi("who")),
                         sorted([b"%s: client-one\n" % a.addr().encode(),
                                 b"%s: client-two\n" % b.addr().encode()]))
        # iam adds to the CN; it cannot replace it.
        self.assertEqual(a.req("iam bob"), b"1 ok\n")
        self.assertEqual(b.multi("d"), [b"x: client-one/bob\n"])
        self.assertIn(b"%s: client-one/bob\n" % a.addr().encode(), b.multi("who"))
        self.assertEqual(b.req("iam client-one"), b"1 ok\n")
        self.assertEqual(b.req("g y"), g_ok("y"))
        self.assertEqual(a.multi("d"), [b"x: client-one/bob\n", b"y: client-two/client-one\n"])
        self.assertEqual(a.multi("who client-one"), [])
        # iam alone goes back to the CN.
        self.assertEqual(a.req("iam"), b"1 ok\n")
        self.assertEqual(b.multi("d x"), [b"x: client-one\n"])
        self.assertEqual(b.multi("who client-one"), [b"%s: client-one\n" % a.addr().encode()])
        # dump keeps ADDRs.
        self.assertEqual(a.multi("dump"),
                         [b"map[x:%s y:%s]\n" % (a.addr().encode(), b.addr().encode())])

    def test_a_resumed_session_keeps_the_certificate_name(self):
        d = self.tls_daemon(["--ssl-subject-name"])
        ctx = self.context("client")
        a = self.tls(d, ctx=ctx)
        self.assertEqual(a.req("me"), b"1 %s client-one\n" % a.addr().encode())  # ticket read
        self.assertIsNotNone(a.sock.session)
        b = self.tls(d, ctx=ctx, session=a.sock.session)
        self.assertTrue(b.sock.session_reused)
        self.assertEqual(b.req("me"), b"1 %s client-one\n" % b.addr().encode())

    def test_verbose_log_shows_the_name_registered(self):
        # -verbose logs renames; with a certificate's name that is CN/X, not
        # the X the client asked for (which would let a log be spoofed).
        d = self.tls_daemon(["--ssl-subject-name", "--verbose"])
        a = self.tls(d, "client")
        self.assertEqual(a.req("iam client-two"), b"1 ok\n")
        self.assertEqual(a.req("me"), b"1 %s client-one/client-two\n" % a.addr().encode())
        self.wait_log_lines(d, a.addr(), "changed their name to")
        self.wait_log_lines(d, a.addr(), "changed their name to 'client-one/client-two'")

    def test_without_the_flag_the_cn_is_not_used(self):
        d = self.tls_daemon()
        a = self.tls(d)
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.multi("d"), [b"x: %s\n" % a.addr().encode()])
        self.assertEqual(a.multi("who"), [])


class StartRefusals(TlsCase):
    """Files that cannot serve: exit 1 naming the flag, the path and why."""

    def base(self, cert=None, key=None, ca=None, extra=(), ws="0"):
        p = self.pki
        return ["--port", str(free_port()), "--bind", "127.0.0.1", "--ws", ws, "--ssl",
                "--ssl-cert", cert or p["server"], "--ssl-key", key or p["server_key"],
                "--ssl-ca", ca or p["ca"]] + list(extra)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def sha1_cert(self):
        """A certificate the test CA signed with SHA-1. (Signed by a CA:
        OpenSSL does not check the signature of a self-signed one.)"""
        k, csr, c = (os.path.join(self.tmp, "sha1." + e) for e in ("key", "csr", "pem"))
        for argv in (["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", k, "-subj", "/CN=sha1-signed", "-out", csr],
                     ["x509", "-req", "-in", csr, "-CA", self.pki["ca"], "-CAkey",
                      self.pki["ca_key"], "-set_serial", "7", "-sha1", "-days", "30",
                      "-out", c]):
            subprocess.run([OPENSSL] + argv, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return c, k

    def test_each_bad_file_is_named_with_its_problem(self):
        p = self.pki
        missing = os.path.join(self.tmp, "no-such-cert.pem")
        keydir = os.path.join(self.tmp, "key-is-a-directory")
        os.mkdir(keydir)
        not_pem = self.write("not-pem.key", "this is not a key\n")
        empty_ca = self.write("empty-ca.pem", "")
        key_as_ca = os.path.join(self.tmp, "key-as-ca.pem")
        shutil.copyfile(p["client_key"], key_as_ca)
        key_as_cert = os.path.join(self.tmp, "key-as-cert.pem")
        shutil.copyfile(p["server_key"], key_as_cert)
        missing_crl = os.path.join(self.tmp, "no-such-crl.pem")
        missing_ws_ca = os.path.join(self.tmp, "no-such-ws-ca.pem")
        sha1, sha1_key = self.sha1_cert()
        cases = [
            (self.base(cert=missing), "--ssl-cert", missing, "No such file or directory"),
            (self.base(key=keydir), "--ssl-key", keydir, ""),
            (self.base(key=not_pem), "--ssl-key", not_pem, ""),
            (self.base(key=p["client_key"]), "--ssl-key", p["client_key"], "does not match"),
            (self.base(ca=empty_ca), "--ssl-ca", empty_ca, ""),  # "empty" or "no certificate"
            (self.base(ca=key_as_ca), "--ssl-ca", key_as_ca, "no certificate"),
            (self.base(cert=key_as_cert), "--ssl-cert", key_as_cert, ""),
            (self.base(cert=p["weak"], key=p["weak_key"]), "--ssl-cert", p["weak"],
             "security level"),
            (self.base(cert=sha1, key=sha1_key), "--ssl-cert", sha1, "security level"),
            (self.base(extra=["--ssl-crl", missing_crl]), "--ssl-crl", missing_crl,
             "No such file or directory"),
            (self.base(ws=str(free_port()), extra=["--ws-ssl", "--ws-ssl-ca", missing_ws_ca]),
             "--ws-ssl-ca", missing_ws_ca,
             "No such file or directory"),
        ]
        if os.geteuid() != 0:  # root reads a mode-000 file anyway
            unreadable = os.path.join(self.tmp, "unreadable.key")
            shutil.copyfile(p["server_key"], unreadable)
            os.chmod(unreadable, 0)
            cases.append((self.base(key=unreadable), "--ssl-key", unreadable,
                          "Permission denied"))
        results = self.run_bad([c[0] for c in cases])
        for (argv, flag, path, why), (rc, out, err) in zip(cases, results):
            with self.subTest(flag=flag, path=path):
                self.assertEqual(rc, 1, "argv %r\nstderr:\n%s" % (argv, err))
                line = [ln for ln in err.splitlines() if ln.startswith("glockd: " + flag)]
                self.assertTrue(line, "no 'glockd: %s' line:\n%s" % (flag, err))
                self.assertIn(path, line[0])
                self.assertIn(why, line[0])

    def test_flags_that_do_not_go_together_exit_2(self):
        p = self.pki
        port = str(free_port())
        results = self.run_bad([
            ["--port", port, "--ws", "0", "--ssl", "--ssl-cert", p["server"], "--ssl-key",
             p["server_key"]],
            ["--port", port, "--ws", "0", "--ssl-cert", p["server"]],
        ])
        (rc1, _, err1), (rc2, _, err2) = results
        self.assertEqual(rc1, 2, err1)
        self.assertIn("--ssl-ca", err1)
        self.assertEqual(rc2, 2, err2)
        self.assertIn("--ssl-cert", err2)

    def test_go_single_dash_forms_start(self):
        p = self.pki
        d = TlsDaemon(self.tmp, ["-ssl", "-ssl-cert=" + p["server"], "-ssl-key", p["server_key"],
                                 "-ssl-ca=" + p["ca"]])
        self.addCleanup(self._finish, d)
        d.start()
        a = self.tls(d)
        self.assertEqual(a.req("g x"), g_ok("x"))


class WsTls(TlsCase):

    def wss_context(self, cert="client"):
        return self.context(cert)

    def test_https_metrics_and_certificate_expiry(self):
        d = self.tls_daemon(tcp_tls=False, ws_tls=True)
        text = self.metrics_text(d)
        self.assertIn("glockd_tls_handshakes_total", text)
        expiry = self.metric(d, "glockd_tls_certificate_expiry_timestamp_seconds")
        out = subprocess.run([OPENSSL, "x509", "-enddate", "-noout", "-in", self.pki["server"]],
                             check=True, capture_output=True, text=True).stdout.strip()
        not_after = ssl.cert_time_to_seconds(out.split("=", 1)[1])
        self.assertLessEqual(abs(expiry - not_after), 86400, (expiry, out))
        # Plain HTTP on the https port gets no HTTP answer.
        s = socket.create_connection(("127.0.0.1", d.ws_port), timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = read_to_close(s)
        self.assertNotIn(b"HTTP/1.1", got)
        # The TCP port stays plain without --ssl.
        c = self.client(d)
        self.assertEqual(c.req("g plain"), g_ok("plain"))

    @unittest.skipIf(websockets is None, "python3-websockets is not installed")
    def test_wss_client_takes_a_lock(self):
        d = self.tls_daemon(ws_tls=True)
        tcp = self.tls(d)
        got = []

        async def go():
            async with websockets.client.connect("wss://127.0.0.1:%d/" % d.ws_port,
                                                 ssl=self.wss_context(None),
                                                 open_timeout=TIMEOUT) as ws:
                await ws.send("g wsx")
                got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
                got.append(tcp.req("i wsx"))  # held while the wss client is there
                await ws.send("g wsx")
                got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))

        asyncio.run(go())
        self.assertEqual(got, [g_ok("wsx").decode(), i_yes("wsx"), g_ok("wsx").decode()])
        self.wait_answer(tcp, "i wsx", i_no("wsx"))  # orphaned when it left

    @unittest.skipIf(websockets is None, "python3-websockets is not installed")
    def test_ws_ssl_ca_requires_a_client_certificate(self):
        d = self.tls_daemon(["--ws-ssl-ca", self.pki["ca"], "--ssl-crl", self.pki["crl"]],
                            ws_tls=True)
        held = self.holder(d)
        url = "wss://127.0.0.1:%d/" % d.ws_port

        async def attempt(ctx):
            async with websockets.client.connect(url, ssl=ctx, open_timeout=TIMEOUT) as ws:
                await ws.send("g wsx")
                return await asyncio.wait_for(ws.recv(), TIMEOUT)

        refusals = (ssl.SSLError, ConnectionError, EOFError, asyncio.IncompleteReadError)
        if websockets is not None:
            refusals += (websockets.exceptions.InvalidHandshake,
                         websockets.exceptions.ConnectionClosed)
        with self.assertRaises(refusals):
            asyncio.run(attempt(self.wss_context(None)))
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1)
        with self.assertRaises(refusals):  # --ssl-crl applies there too
            asyncio.run(attempt(self.wss_context("revoked")))
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 2)
        self.assertEqual(asyncio.run(attempt(self.wss_context("client"))), g_ok("wsx").decode())
        self.still_served(held)
        # The TCP port's client certificate rules are its own (same CRL).
        self.refused(d, self.context(cert=None))
        self.refused(d, self.context("revoked"))


# --------------------------------------------------------------------------
# Hostile clients against the TLS port (the isolation issue's checks)


class Hostile(TlsCase):

    def test_200_stalled_handshakes_at_once(self):
        d = self.tls_daemon(["--ssl-handshake-timeout", "1"])
        held = self.holder(d)
        hello = client_hello()
        stalls, answered = [], 0
        for k in range(200):
            s = self.raw(d)
            if k % 2:
                s.sendall(hello[:len(hello) // 2])
            stalls.append(s)
            if k % 20 == 0:
                self.still_served(held)
                answered += 1
        self.assertEqual(answered, 10)
        # Every one dropped: an EOF (or a reset) on each, with at most an alert.
        open_socks = {s.fileno(): s for s in stalls}
        poll = select.poll()
        for fd in open_socks:
            poll.register(fd, select.POLLIN)
        deadline = time.monotonic() + TIMEOUT
        while open_socks:
            remaining = deadline - time.monotonic()
            self.assertGreater(remaining, 0, "%d stalled connections never closed"
                               % len(open_socks))
            for fd, _ in poll.poll(remaining * 1000):
                try:
                    chunk = open_socks[fd].recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    self.assertEqual(chunk[0], TLS_ALERT, chunk)
                else:
                    del open_socks[fd]
                    poll.unregister(fd)
        self.settle_metric(d, "glockd_tls_handshake_timeouts_total", 200)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        self.still_served(held)
        self.settle_metric(d, "glockd_tls_connections", 1)

    def test_100_client_hellos_never_finished(self):
        # Each full ClientHello costs the daemon its side of the key
        # exchange and a signature; the clients never go on. Spread over
        # turns, they hold up no one, and each is dropped at the timeout.
        d = self.tls_daemon(["--ssl-handshake-timeout", "1"])
        held = self.holder(d)
        socks = []
        for k in range(100):
            s = self.raw(d)
            s.sendall(client_hello())
            socks.append(s)
            if k % 10 == 0:
                self.still_served(held)
        for s in socks:
            got = read_to_close(s)  # the server's flight, then the drop
            self.assertTrue(got == b"" or got[0] in (0x15, 0x16), got[:20])
        self.settle_metric(d, "glockd_tls_handshake_timeouts_total", 100)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        self.still_served(held)

    def test_garbage_records_and_random_bytes(self):
        d = self.tls_daemon(["--ssl-handshake-timeout", "5"])
        held = self.holder(d)
        rnd = random.Random(12)
        body = bytes([0xEE]) + rnd.randbytes(63)
        garbage = [
            b"\x16\x03\x01\x00\x40" + body,                  # handshake record, random inside
            b"\x17\x03\x03\x00\x40" + rnd.randbytes(64),     # application data before a handshake
            b"\x15\x03\x03\x00\x02\x02\x28" * 3,             # fatal alerts, unasked
            b"\x16\x03\x01\xff\xff" + rnd.randbytes(1000),   # a record longer than TLS allows
            b"\x42" + rnd.randbytes(999),                    # random bytes
            client_hello()[:9] + rnd.randbytes(3000),       # a ClientHello that turns random
        ]
        for k, data in enumerate(garbage):
            s = self.raw(d)
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while we were still writing: fine
            got = read_to_close(s)
            self.assertTrue(got == b"" or got[0] == TLS_ALERT, (k, got))
            self.still_served(held)
            self.settle_metric(d, "glockd_tls_handshake_failures_total", k + 1)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_timeouts_total"), 0)
        self.wait_log_lines(d, "TLS handshake failed")

    def test_a_client_hello_bigger_than_64_kib_fails(self):
        # A ClientHello declared 96 KiB long, sent as full records: the
        # daemon holds at most 64 KiB of handshake input, then fails it
        # (without waiting for the timeout).
        d = self.tls_daemon(["--ssl-handshake-timeout", "3"])  # a failure, not this
        held = self.holder(d)
        s = self.raw(d)
        body = b"\x01\x01\x80\x00" + bytes(16380)
        data = b"\x16\x03\x01\x40\x00" + body
        data += (b"\x16\x03\x01\x40\x00" + bytes(16384)) * 5  # 96 KiB in all
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = read_to_close(s)
        self.assertTrue(got == b"" or got[0] == TLS_ALERT, got)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_timeouts_total"), 0,
                         "the daemon waited for the rest of the ClientHello")
        self.settle_metric(d, "glockd_tls_handshake_failures_total", 1)
        self.still_served(held)

    def test_a_client_that_never_reads_is_paused_and_others_are_served(self):
        # Requests whose answers it never reads, sent over TLS: the daemon
        # stops reading it at its output bound; the others go on.
        d = self.tls_daemon(["--max-output-per-connection", "256KiB"])
        held = self.holder(d)
        raw, obj, incoming, outgoing = self.bio_client(d)
        raw.setblocking(False)
        data, sent = b"", 0
        deadline = time.monotonic() + TIMEOUT
        while self.metric(d, "glockd_paused_connections") < 1:
            if sent == len(data):  # more of the same, encrypted
                obj.write(b"q\n" * 20000)
                data, sent = outgoing.read(), 0
            try:
                sent += raw.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
            self.assertLess(time.monotonic(), deadline, "never paused (sent %d)" % sent)
        self.still_served(held)
        self.assertGreaterEqual(self.metric(d, "glockd_input_pauses_total") +
                                self.metric(d, "glockd_output_pauses_total") +
                                self.metric(d, "glockd_memory_pauses_total"), 1)
        self.assertLessEqual(self.metric(d, "glockd_unsent_bytes"), 256 * 1024 + 64 * 1024)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        raw.close()
        self.settle_metric(d, "glockd_paused_connections", 0)
        self.still_served(held)

    def test_garbage_after_the_handshake_closes_only_that_connection(self):
        d = self.tls_daemon()
        held = self.holder(d)
        bad = self.tls(d)
        self.assertEqual(bad.req("g bad"), g_ok("bad"))
        # Bytes that are no TLS record, straight into its TCP stream.
        os.write(bad.sock.fileno(), b"\x17\x03\x03\x00\x20" + bytes(32) + b"g x\n" * 10)
        held.send(b"w 600000 bad\n")
        self.assertEqual(held.readline(), g_ok("bad"))  # the garbage ended it: orphaned
        self.still_served(held)
        self.settle_metric(d, "glockd_tls_connections", 1)

    def test_renegotiation_is_refused(self):
        d = self.tls_daemon()
        held = self.holder(d)
        s = self.s_client(d, quiet=False, extra=["-tls1_2", "-msg"])
        s.send(b"g reneg\n")
        s.expect(g_ok("reneg"))
        # "R" at the start of a line: s_client starts a renegotiation.
        s.send(b"R\n")
        s.wait_stderr("RENEGOTIATING")
        self.still_served(held)  # while the attempt is under way
        renegotiated = s.read_until(lambda out: out.count(b", ServerHello\n") >= 2,
                                    "second ServerHello or end")
        self.assertFalse(renegotiated, "the daemon accepted a renegotiation:\n%s"
                         % s.out.decode("utf-8", "replace")[-3000:])
        self.assertIn("RENEGOTIATING", s.stderr())
        rc = s.wait_end()
        self.assertNotEqual(rc, None)
        self.assertEqual(s.out.count(b", ServerHello\n"), 1)
        # Its lock went with it; the others are served.
        held.send(b"w 600000 reneg\n")
        self.assertEqual(held.readline(), g_ok("reneg"))
        self.still_served(held)
        other = self.tls(d, version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(other.req("i reneg"), i_yes("reneg"))

    def test_burst_of_100_handshakes_while_a_client_is_served(self):
        d = self.tls_daemon()
        held = self.holder(d)
        n = 100
        results = [None] * n
        barrier = threading.Barrier(n, timeout=TIMEOUT)
        ctx = self.context("client")

        def one(k):
            try:
                raw = socket.create_connection(("127.0.0.1", d.port), timeout=TIMEOUT)
                barrier.wait()
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    c = Client(s, "tcp")
                    results[k] = c.req("i burst%d" % k)
            except Exception as e:  # reported below
                results[k] = e

        threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        served = 0
        while any(t.is_alive() for t in threads):
            self.assertEqual(held.req("i held"), i_yes("held"))
            served += 1
        for t in threads:
            t.join(TIMEOUT)
        self.assertEqual(results, [i_no("burst%d" % k) for k in range(n)])
        self.assertGreaterEqual(served, 1)
        self.still_served(held)
        self.assertEqual(self.metric(d, "glockd_tls_handshakes_total"), n + 1)
        self.assertEqual(self.metric(d, "glockd_tls_handshake_failures_total"), 0)
        self.metric(d, "glockd_tls_handshake_deferrals_total")  # exported (how many: CPU-bound)
        self.settle_metric(d, "glockd_tls_connections", 1)


if __name__ == "__main__":
    unittest.main()

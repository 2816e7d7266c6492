# The websocket transport and the HTTP endpoints on the --ws port
# (docs/PROTOCOL.md sections 3 and 4, RFC 6455, RFC 9110).
#
# Well-behaved clients use Debian's python3-websockets (10.4, asyncio API);
# protocol violations and byte-level framing use a raw socket client.
# Throughout, locks held by other connections (a TCP client and another
# websocket client) must be unaffected by whatever one client does wrong.
#
# Run with /usr/bin/python3 (python3-websockets is a Debian package).

import asyncio
import base64
import hashlib
import os
import re
import select
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TIMEOUT, Daemon, DaemonTestCase, free_port, tail,  # noqa: E402
                     g_ok, g_fail, r_ok, r_fail, i_yes, i_no, sg_ok, si_yes, si_no)

try:
    import websockets
    import websockets.client
    import websockets.exceptions
except ImportError:  # pragma: no cover
    websockets = None

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def b(x):
    return x if isinstance(x, bytes) else x.encode("utf-8")


# --------------------------------------------------------------------------
# Daemon with the websocket port enabled


class WsDaemon(Daemon):
    """A glockd with --ws on a free port (a new one on each start attempt)."""

    def __init__(self, tmpdir, ws_args=(), **kw):
        super().__init__(tmpdir, **kw)
        self.ws_args = list(ws_args)
        self.ws_port = 0

    def default_argv(self):
        a = super().default_argv()
        i = a.index("--ws")
        a[i + 1] = str(self.ws_port)
        return a + self.ws_args

    def spawn(self):
        self.ws_port = free_port()
        super().spawn()

    def start(self):
        super().start()
        # Every listener is opened before the loop runs, so TCP answering
        # means the websocket port is listening too; check it anyway without
        # connecting to it (a connection would show in the figures).
        return self


class WsTestCase(DaemonTestCase):

    def ws_daemon(self, ws_args=(), **kw):
        d = WsDaemon(self.tmp, ws_args=ws_args, **kw)
        self.addCleanup(self._finish, d)
        d.start()
        return d

    def raw(self, d, **kw):
        w = RawWS.connect(d.ws_port, **kw)
        self.addCleanup(w.close)
        return w

    def tcp(self, d):
        return self.client(d)

    def wait_log_line(self, d, *parts):
        """Some stderr line contains every one of parts."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for line in d.stderr().splitlines():
                if all(p in line for p in parts):
                    return line
            if time.monotonic() > deadline:
                self.fail("no log line with %r; stderr:\n%s" % (parts, tail(d.stderr())))
            time.sleep(0.02)


# --------------------------------------------------------------------------
# Raw RFC 6455 client (client side: masks its frames unless told not to)


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None, key=None):
    """One client frame. length overrides the declared payload length."""
    payload = b(payload)
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if not mask:
        return hdr + payload
    key = key if key is not None else os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + b(reason)


class Closed(Exception):
    """The peer closed the TCP connection (EOF or reset)."""


class RawWS:
    def __init__(self, sock, buf=b""):
        self.sock = sock
        self.buf = buf

    # -- connecting

    @staticmethod
    def open_socket(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(("127.0.0.1", port))
        except Exception:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    @staticmethod
    def upgrade_head(port, key, origin=None, extra=b""):
        head = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                b"Sec-WebSocket-Version: 13\r\n" % (port, key))
        if origin is not None:
            head += b"Origin: " + b(origin) + b"\r\n"
        return head + extra + b"\r\n"

    @classmethod
    def connect(cls, port, origin=None, chunk=None):
        """Open and upgrade; chunk: send the head this many bytes at a time."""
        s = cls.open_socket(port)
        key = base64.b64encode(os.urandom(16))
        head = cls.upgrade_head(port, key, origin)
        try:
            if chunk:
                for i in range(0, len(head), chunk):
                    s.sendall(head[i:i + chunk])
                    time.sleep(0.001)
            else:
                s.sendall(head)
            status, headers, rest = read_http_head(s)
        except Exception:
            s.close()
            raise
        if status != 101:
            s.close()
            raise AssertionError("upgrade answered %d, not 101: %r" % (status, headers))
        if headers.get("sec-websocket-accept", "").encode() != accept_for(key):
            s.close()
            raise AssertionError("bad Sec-WebSocket-Accept %r for key %r"
                                 % (headers.get("sec-websocket-accept"), key))
        if "websocket" not in headers.get("upgrade", "").lower() or \
                "upgrade" not in headers.get("connection", "").lower():
            s.close()
            raise AssertionError("101 without Upgrade/Connection headers: %r" % headers)
        return cls(s, rest)

    def addr(self):
        h, p = self.sock.getsockname()[:2]
        return "%s:%d" % (h, p)

    # -- sending

    def send(self, data):
        self.sock.sendall(data)

    def text(self, payload):
        self.send(frame(OP_TEXT, payload))

    # -- receiving

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("timed out waiting for the daemon; have %r" % self.buf[:300])
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("timed out waiting for the daemon; have %r" % self.buf[:300])
        except ConnectionResetError:
            raise Closed("reset")
        if not chunk:
            raise Closed("eof")
        self.buf += chunk

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self, timeout=TIMEOUT):
        """(fin, opcode, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._take(2, deadline)
        if b1 & 0x80:
            raise AssertionError("server frame is masked (RFC 6455 5.1): %r" % bytes([b0, b1]))
        if b0 & 0x70:
            raise AssertionError("server frame has RSV bits set: %#x" % b0)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n, deadline)

    def message(self, timeout=TIMEOUT):
        """(opcode, payload) of the next data message; control frames other
        than close are returned as they come (opcode PING/PONG)."""
        fin, op, data = self.frame(timeout)
        if op in (OP_PING, OP_PONG, OP_CLOSE):
            if op == OP_CLOSE:
                raise AssertionError("unexpected close frame %r" % data)
            return op, data
        if op not in (OP_TEXT, OP_BIN):
            raise AssertionError("server sent opcode %#x outside a message" % op)
        while not fin:
            fin, op2, more = self.frame(timeout)
            if op2 != OP_CONT:
                raise AssertionError("server interleaved opcode %#x in a fragmented message"
                                     % op2)
            data += more
        return op, data

    def answer(self, timeout=TIMEOUT):
        """The next message, which must be a text message; returns its bytes."""
        op, data = self.message(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text message, got opcode %#x: %r" % (op, data))
        data.decode("utf-8")  # a text message must be valid UTF-8
        return data

    def req(self, payload):
        self.text(payload)
        return self.answer()

    def assert_silent(self, payload, opcode=OP_TEXT):
        """A message that must get no message back (checked with a follow-up i)."""
        name = "__silent_%s" % os.urandom(4).hex()
        self.send(frame(opcode, payload) + frame(OP_TEXT, "i " + name))
        got = self.answer()
        if got != i_no(name):
            raise AssertionError("expected no answer to %r, got %r" % (payload[:200], got[:300]))

    def nothing_within(self, seconds):
        """True when no byte arrives within seconds (only used to show that
        something is still waiting; never to show that something is fast)."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], seconds)
        return not r

    def expect_close(self, timeout=TIMEOUT):
        """Read the server's close frame (the next frame) and then the end
        of the TCP connection; returns (code or None, reason)."""
        fin, op, data = self.frame(timeout)
        if op != OP_CLOSE:
            raise AssertionError("expected a close frame, got opcode %#x payload %r" % (op, data))
        if not fin:
            raise AssertionError("fragmented close frame")
        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        if len(data) == 1:
            raise AssertionError("close frame with a 1-byte payload")
        self.expect_end(timeout)
        return code, data[2:]

    def expect_end(self, timeout=TIMEOUT):
        """After the close handshake the server closes TCP: no more frames."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                if self.buf:
                    raise AssertionError("data after the close frame: %r" % self.buf[:200])
        except Closed:
            return

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# --------------------------------------------------------------------------
# HTTP helpers


def read_http_head(sock, timeout=TIMEOUT):
    """(status, {lower-case header: value}, bytes after the head)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no complete HTTP response head; got %r" % buf[:500])
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("no complete HTTP response head; got %r" % buf[:500])
        if not chunk:
            raise AssertionError("connection closed inside the HTTP response head: %r"
                                 % buf[:500])
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.1 (\d{3}) [^\r\n]*$", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    headers = {}
    for ln in lines[1:]:
        k, sep, v = ln.partition(":")
        if not sep or not k or k != k.strip():
            raise AssertionError("bad header line %r" % ln)
        headers[k.lower()] = v.strip()
    return int(m.group(1)), headers, rest


def http_exchange(port, raw, timeout=TIMEOUT):
    """Send raw bytes, read one HTTP response (body by Content-Length).
    Returns (status, headers, body)."""
    s = RawWS.open_socket(port)
    try:
        s.sendall(raw)
        status, headers, rest = read_http_head(s, timeout)
        if "content-length" not in headers:
            raise AssertionError("response without Content-Length: %r" % headers)
        n = int(headers["content-length"])
        deadline = time.monotonic() + timeout
        while len(rest) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("body shorter than Content-Length %d: %r" % (n, rest[:200]))
            s.settimeout(remaining)
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("body shorter than Content-Length %d: %r" % (n, rest[:200]))
            rest += chunk
        if len(rest) != n:
            raise AssertionError("more bytes than Content-Length %d: %r" % (n, rest[:200]))
        return status, headers, rest
    finally:
        s.close()


def get(port, path, extra=b""):
    return http_exchange(port, b"GET " + b(path) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                         extra + b"\r\n")


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse_metrics(text):
    """{(name, labels): float}; checks the text format as it goes: every
    line a comment or a sample, TYPE/HELP once per family and before its
    samples, a family's samples together, no duplicate series."""
    out = {}
    typed = {}
    seen_families = []
    for ln in text.split("\n")[:-1]:
        if ln.startswith("#"):
            parts = ln.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                fam = parts[2]
                if parts[1] == "TYPE":
                    assert fam not in typed, "TYPE twice for %s" % fam
                    assert parts[3] in ("counter", "gauge", "untyped", "summary",
                                        "histogram"), ln
                    typed[fam] = parts[3]
                assert fam not in [f for f in seen_families[:-1]], \
                    "family %s split up" % fam
                if not seen_families or seen_families[-1] != fam:
                    assert not any(n == fam for (n, _l) in out), \
                        "%s described after its samples" % fam
                    seen_families.append(fam)
            continue
        m = SAMPLE_RE.match(ln)
        assert m, "not a sample line: %r" % ln
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        if not seen_families or seen_families[-1] != fam:
            assert fam not in seen_families, "family %s split up" % fam
            seen_families.append(fam)
        assert (name, labels) not in out, "duplicate series %s%s" % (name, labels)
        out[(name, labels)] = float(value)
    assert text.endswith("\n"), "metrics text does not end in a newline"
    for name, typ in typed.items():
        if typ == "counter":
            assert name.endswith("_total"), "counter %s without _total" % name
    return out, typed


# --------------------------------------------------------------------------
# websockets (the library) helpers


def run(coro, timeout=3 * TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def lib_connect(d, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    return await websockets.client.connect("ws://127.0.0.1:%d/" % d.ws_port, **kw)


async def lib_req(ws, text):
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


def s(x):
    return x.decode("utf-8") if isinstance(x, bytes) else x


# ==========================================================================


@unittest.skipIf(websockets is None, "python3-websockets is not installed")
class WebSocketLocks(WsTestCase):

    def test_lock_unlock_exact_answers(self):
        d = self.ws_daemon()

        async def main():
            ws = await lib_connect(d)
            try:
                self.assertEqual(await lib_req(ws, "i foo"), s(i_no("foo")))
                self.assertEqual(await lib_req(ws, "g foo"), s(g_ok("foo")))
                self.assertEqual(await lib_req(ws, "g foo"), s(g_ok("foo")))
                self.assertEqual(await lib_req(ws, "i foo"), s(i_yes("foo")))
                self.assertEqual(await lib_req(ws, "r foo"), s(r_ok("foo")))
                self.assertEqual(await lib_req(ws, "r foo"), s(r_fail("foo")))
                self.assertEqual(await lib_req(ws, "i foo"), s(i_no("foo")))
                # Section 0 normalisation applies inside messages.
                self.assertEqual(await lib_req(ws, "  g   my \t lock  "), s(g_ok("my lock")))
                self.assertEqual(await lib_req(ws, "r my lock\r\n"), s(r_ok("my lock")))
                self.assertEqual(await lib_req(ws, "sg sh"), s(sg_ok(1, "sh")))
                self.assertEqual(await lib_req(ws, "si sh"), s(si_yes(1, "sh")))
                self.assertEqual(await lib_req(ws, "sr sh"),
                                 "1 Shared Lock Release Success: sh\n")
                self.assertEqual(await lib_req(ws, "si sh"), s(si_no("sh")))
                # Non-ASCII names (valid UTF-8 in a text message) round-trip.
                self.assertEqual(await lib_req(ws, "g Schlüssel ✓"), s(g_ok("Schlüssel ✓")))
                # A binary message carries requests as well; answers are text.
                await ws.send(b"i Schl\xc3\xbcssel \xe2\x9c\x93")
                self.assertEqual(await asyncio.wait_for(ws.recv(), TIMEOUT),
                                 s(i_yes("Schlüssel ✓")))
                # ADDR of a websocket connection is IP:PORT.
                h, p = ws.local_address[:2]
                addr = "%s:%d" % (h, p)
                self.assertEqual(await lib_req(ws, "me"), "1 %s %s\n" % (addr, addr))
                await ws.close()
                self.assertEqual(ws.close_code, 1000)
            finally:
                await ws.close()

        run(main())

    def test_contention_between_websocket_and_tcp(self):
        d = self.ws_daemon()
        t = self.tcp(d)

        async def main():
            ws = await lib_connect(d)
            try:
                # websocket holds, TCP is refused
                self.assertEqual(await lib_req(ws, "g wsfirst"), s(g_ok("wsfirst")))
                self.assertEqual(t.req("g wsfirst"), g_fail("wsfirst"))
                self.assertEqual(t.req("i wsfirst"), i_yes("wsfirst"))
                self.assertEqual(t.req("r wsfirst"), r_fail("wsfirst"))
                # TCP holds, websocket is refused
                self.assertEqual(t.req("g tcpfirst"), g_ok("tcpfirst"))
                self.assertEqual(await lib_req(ws, "g tcpfirst"), s(g_fail("tcpfirst")))
                self.assertEqual(await lib_req(ws, "i tcpfirst"), s(i_yes("tcpfirst")))
                self.assertEqual(await lib_req(ws, "r tcpfirst"), s(r_fail("tcpfirst")))
                # Hand over in both directions.
                self.assertEqual(await lib_req(ws, "r wsfirst"), s(r_ok("wsfirst")))
                self.assertEqual(t.req("g wsfirst"), g_ok("wsfirst"))
                self.assertEqual(t.req("r tcpfirst"), r_ok("tcpfirst"))
                self.assertEqual(await lib_req(ws, "g tcpfirst"), s(g_ok("tcpfirst")))
                self.assertEqual(t.req("g tcpfirst"), g_fail("tcpfirst"))
                self.assertEqual(await lib_req(ws, "g wsfirst"), s(g_fail("wsfirst")))
                # Shared locks count holders across transports.
                self.assertEqual(t.req("sg both"), sg_ok(1, "both"))
                self.assertEqual(await lib_req(ws, "sg both"), s(sg_ok(2, "both")))
                self.assertEqual(t.req("si both"), si_yes(2, "both"))
            finally:
                await ws.close()

        run(main())

    def test_orphaned_on_clean_close(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        before = t.q()

        async def main():
            ws = await lib_connect(d)
            self.assertEqual(await lib_req(ws, "g gone1"), s(g_ok("gone1")))
            self.assertEqual(await lib_req(ws, "g gone2"), s(g_ok("gone2")))
            self.assertEqual(await lib_req(ws, "sg sgone"), s(sg_ok(1, "sgone")))
            self.assertEqual(t.req("i gone1"), i_yes("gone1"))
            await ws.close(1000, "bye")
            self.assertEqual(ws.close_code, 1000)

        run(main())
        self.settle(t, orphans=before["orphans"] + 2,
                    shared_orphans=before["shared_orphans"] + 1, locks=0, shared_locks=0)
        self.assertEqual(t.req("i gone1"), i_no("gone1"))
        self.assertEqual(t.req("i gone2"), i_no("gone2"))
        self.assertEqual(t.req("si sgone"), si_no("sgone"))
        self.assertEqual(t.req("g gone1"), g_ok("gone1"))

    def test_orphaned_on_reset_without_close_frame(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        w = RawWS.connect(d.ws_port)
        self.assertEqual(w.req("g rst1"), g_ok("rst1"))
        self.assertEqual(w.req("sg srst"), sg_ok(1, "srst"))
        self.assertEqual(t.req("i rst1"), i_yes("rst1"))
        before = t.q()
        w.reset()
        self.settle(t, orphans=before["orphans"] + 1,
                    shared_orphans=before["shared_orphans"] + 1,
                    connections=before["connections"] - 1)
        self.assertEqual(t.req("i rst1"), i_no("rst1"))
        self.assertEqual(t.req("si srst"), si_no("srst"))

    def test_orphaned_on_plain_fin_without_close_frame(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        w = RawWS.connect(d.ws_port)
        self.assertEqual(w.req("g fin1"), g_ok("fin1"))
        before = t.q()
        w.sock.shutdown(socket.SHUT_WR)
        w.expect_end()
        w.close()
        self.settle(t, orphans=before["orphans"] + 1, connections=before["connections"] - 1)
        self.assertEqual(t.req("i fin1"), i_no("fin1"))


class WebSocketMessages(WsTestCase):

    def test_pipelined_requests_in_one_message(self):
        d = self.ws_daemon(args=["--max-line", "64"])
        t = self.tcp(d)
        w = self.raw(d)
        w.text("g p1\ng p2\ni p1\r\nr p1\n\n   \nbogus\nr p1\nsg sp\ni p2\n")
        want = [g_ok("p1"), g_ok("p2"), i_yes("p1"), r_ok("p1"), r_fail("p1"),
                sg_ok(1, "sp"), i_yes("p2")]
        for exp in want:
            self.assertEqual(w.answer(), exp)
        # A multi-line answer is one message, all its lines with their \n.
        w.text("q\ni p2")
        q = w.answer()
        lines = q.split(b"\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines) - 1, 19, q)
        self.assertEqual([ln.split(b":")[0].decode() for ln in lines[:-1]],
                         sorted(ln.split(b":")[0].decode() for ln in lines[:-1]))
        self.assertIn(b"\nlocks: 1\n", q)
        self.assertIn(b"\nshared_locks: 1\n", q)
        self.assertEqual(w.answer(), i_yes("p2"))
        # Several messages in one TCP write: one answer message each, in order.
        w.send(frame(OP_TEXT, "i p1") + frame(OP_TEXT, "i p2") + frame(OP_BIN, "i p3"))
        self.assertEqual(w.answer(), i_no("p1"))
        self.assertEqual(w.answer(), i_yes("p2"))
        self.assertEqual(w.answer(), i_no("p3"))
        # The message's end ends its last request; a trailing \n adds nothing.
        self.assertEqual(w.req("i p2\n"), i_yes("p2"))
        w.assert_silent("")
        w.assert_silent("\n\n\r\n")
        # An overlong line (--max-line 64) is dropped, its neighbours answered.
        w.text("i a\ni " + "x" * 100 + "\ni b")
        self.assertEqual(w.answer(), i_no("a"))
        self.assertEqual(w.answer(), i_no("b"))
        # A request split across two messages is two requests, not one.
        w.text("i spl")
        self.assertEqual(w.answer(), i_no("spl"))
        self.assertEqual(t.req("i p2"), i_yes("p2"))

    def test_unknown_command_gets_no_message(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        w = self.raw(d)
        before = t.q()["invalid_commands"]
        w.assert_silent("bogus x")
        w.assert_silent("G foo")
        w.assert_silent(b"frob\nnope 1 2")
        w.assert_silent("bogus", opcode=OP_BIN)
        self.settle(t, invalid_commands=before + 5)
        # d with no locks answers zero lines: no message either.
        w.assert_silent("d")
        w.assert_silent("sd")

    def test_answers_with_non_utf8_names_are_valid_messages(self):
        # Lock names are opaque bytes (section 0), so a TCP client can hold
        # a name that is not UTF-8, and answers to a websocket client then
        # carry those bytes. RFC 6455 5.6/8.1: a text message must be valid
        # UTF-8 (a browser fails the connection otherwise), so such an
        # answer must come as a binary message with the exact bytes, or at
        # least never as an invalid text message.
        d = self.ws_daemon(args=["--dump"])
        t = self.tcp(d)
        name = b"\xffraw\xc3"
        self.assertEqual(t.req(b"g " + name), g_ok(name))
        w = self.raw(d)
        cases = [
            ("i (binary message)", frame(OP_BIN, b"i " + name), i_yes(name)),
            ("d", frame(OP_TEXT, b"d"), name + b": " + t.addr().encode() + b"\n"),
            ("dump", frame(OP_TEXT, b"dump"), b"map[" + name + b":" + t.addr().encode() + b"]\n"),
        ]
        for label, data, want in cases:
            with self.subTest(request=label):
                w.send(data)
                op, got = w.message()
                self.assertEqual(got, want)
                if op == OP_TEXT:
                    try:
                        got.decode("utf-8")
                    except UnicodeDecodeError:
                        self.fail("text message with invalid UTF-8: %r" % got)
                else:
                    self.assertEqual(op, OP_BIN)
        # and the connection is still fine
        self.assertEqual(w.req("i ok"), i_no("ok"))

    def test_fragmented_message_with_interleaved_ping(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        w = self.raw(d)
        # "g fräg\ni fräg" in four fragments, the ä (c3 a4) split between
        # two of them, an empty fragment and a ping in the middle.
        w.send(frame(OP_TEXT, b"g fr\xc3", fin=False))
        w.send(frame(OP_PING, b"mid-ping"))
        self.assertEqual(w.frame(), (True, OP_PONG, b"mid-ping"))
        w.send(frame(OP_CONT, b"", fin=False))
        w.send(frame(OP_CONT, b"\xa4g\ni ", fin=False))
        self.assertTrue(w.nothing_within(0.2), "answered before the last fragment: %r" % w.buf)
        w.send(frame(OP_CONT, "fräg", fin=True))
        self.assertEqual(w.answer(), g_ok("fräg"))
        self.assertEqual(w.answer(), i_yes("fräg"))
        self.assertEqual(t.req("i fräg"), i_yes("fräg"))
        # All fragments and the ping in one write.
        w.send(frame(OP_BIN, b"r fr", fin=False) + frame(OP_PING, b"") +
               frame(OP_CONT, b"\xc3\xa4g", fin=True))
        self.assertEqual(w.frame(), (True, OP_PONG, b""))
        self.assertEqual(w.answer(), r_ok("fräg"))
        self.assertEqual(t.req("i fräg"), i_no("fräg"))

    def test_ping_gets_pong_with_same_payload(self):
        d = self.ws_daemon()
        w = self.raw(d)
        for payload in (b"", b"x", bytes(range(125)), os.urandom(125), b"\xff\xfe not utf-8"):
            w.send(frame(OP_PING, payload))
            self.assertEqual(w.frame(), (True, OP_PONG, payload))
        # Several pings in one write: one pong each, in order.
        w.send(frame(OP_PING, b"1") + frame(OP_PING, b"2") + frame(OP_PING, b"3"))
        self.assertEqual([w.frame() for _ in range(3)],
                         [(True, OP_PONG, b"1"), (True, OP_PONG, b"2"), (True, OP_PONG, b"3")])
        # An unsolicited pong is ignored.
        w.send(frame(OP_PONG, b"unsolicited"))
        w.assert_silent("")
        self.assertEqual(w.req("i still"), i_no("still"))

    def test_close_handshake_echoes_code(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        for code, reason in ((1000, b"bye"), (1001, b""), (3000, b"app"), (4001, "ünï".encode()),
                             (4999, b"")):
            with self.subTest(code=code):
                w = self.raw(d)
                self.assertEqual(w.req("g closer%d" % code), g_ok("closer%d" % code))
                w.send(frame(OP_CLOSE, close_payload(code, reason)))
                got, _ = w.expect_close()
                self.assertEqual(got, code)
                self.wait_answer(t, "i closer%d" % code, i_no("closer%d" % code))
        # A close without a status code: the answer carries no 1005 (RFC
        # 6455 7.4.1: never on the wire); empty, or a normal 1000.
        w = self.raw(d)
        w.send(frame(OP_CLOSE, b""))
        got, _ = w.expect_close()
        self.assertIn(got, (None, 1000))
        # Requests in the same write before the close are answered first.
        w = self.raw(d)
        w.send(frame(OP_TEXT, "g last") + frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(w.answer(), g_ok("last"))
        self.assertEqual(w.expect_close()[0], 1000)
        self.wait_answer(t, "i last", i_no("last"))
        # Data after the close frame is ignored.
        w = self.raw(d)
        w.send(frame(OP_CLOSE, close_payload(1000)) + frame(OP_TEXT, "g after"))
        self.assertEqual(w.expect_close()[0], 1000)
        self.assertEqual(t.req("i after"), i_no("after"))

    def test_frame_split_across_tiny_writes(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        # The handshake head 3 bytes at a time, then frames one byte at a time.
        w = self.raw(d, chunk=3)
        name = "tiny-" + "n" * 180  # 16-bit extended length
        data = frame(OP_TEXT, "g " + name) + frame(OP_PING, b"pp") + frame(OP_TEXT, "i " + name)
        for i in range(len(data)):
            w.send(data[i:i + 1])
            time.sleep(0.0005)
        self.assertEqual(w.answer(), g_ok(name))
        self.assertEqual(w.frame(), (True, OP_PONG, b"pp"))
        self.assertEqual(w.answer(), i_yes(name))
        self.assertEqual(t.req("i " + name), i_yes(name))
        # A 64-bit length frame (65536+ bytes) in 7-byte pieces under a
        # daemon default of 1 MiB per message.
        big = "i " + "b" * 70000
        data = frame(OP_TEXT, big)
        self.assertEqual(data[1] & 0x7F, 127)
        for i in range(0, len(data), 7000):
            w.send(data[i:i + 7000])
        # over --max-line (8192): dropped, no answer
        w.assert_silent("")
        self.assertEqual(w.req("i " + name), i_yes(name))


class WebSocketViolations(WsTestCase):
    """Each violation closes that connection with the RFC's status code;
    locks of other connections (TCP and websocket) stay where they were,
    and the violator's own locks are orphaned."""

    LIMIT = 1000

    VIOLATIONS = [
        # (name, bytes after one valid request, close code)
        ("unmasked frame", lambda: frame(OP_TEXT, "i x", mask=False), 1002),
        ("unmasked ping", lambda: frame(OP_PING, b"p", mask=False), 1002),
        ("rsv1 bit", lambda: frame(OP_TEXT, "i x", rsv=4), 1002),
        ("rsv2 bit", lambda: frame(OP_TEXT, "i x", rsv=2), 1002),
        ("rsv3 bit", lambda: frame(OP_TEXT, "i x", rsv=1), 1002),
        ("rsv on control", lambda: frame(OP_PING, b"p", rsv=4), 1002),
        ("reserved data opcode 3", lambda: frame(0x3, "i x"), 1002),
        ("reserved data opcode 7", lambda: frame(0x7, "i x"), 1002),
        ("reserved control opcode 0xB", lambda: frame(0xB, b"x"), 1002),
        ("reserved control opcode 0xF", lambda: frame(0xF, b""), 1002),
        ("ping over 125 bytes", lambda: frame(OP_PING, b"p" * 126), 1002),
        ("close over 125 bytes", lambda: frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002),
        ("pong over 125 bytes", lambda: frame(OP_PONG, b"p" * 200), 1002),
        ("fragmented ping", lambda: frame(OP_PING, b"p", fin=False), 1002),
        ("continuation without a message", lambda: frame(OP_CONT, "i x"), 1002),
        ("new message inside a fragmented one",
         lambda: frame(OP_TEXT, "i x", fin=False) + frame(OP_TEXT, "i y"), 1002),
        ("64-bit length with the top bit set", lambda: frame(OP_TEXT, length=1 << 63), 1002),
        ("close with a 1-byte payload", lambda: frame(OP_CLOSE, b"\x03"), 1002),
        ("close code 1005 on the wire", lambda: frame(OP_CLOSE, close_payload(1005)), 1002),
        ("close code 999", lambda: frame(OP_CLOSE, close_payload(999)), 1002),
        ("close code 1006", lambda: frame(OP_CLOSE, close_payload(1006)), 1002),
        ("close code 5000", lambda: frame(OP_CLOSE, close_payload(5000)), 1002),
        ("invalid UTF-8 text", lambda: frame(OP_TEXT, b"i \xff\xfe"), 1007),
        ("overlong UTF-8", lambda: frame(OP_TEXT, b"i \xc0\xaf"), 1007),
        ("UTF-8 surrogate", lambda: frame(OP_TEXT, b"i \xed\xa0\x80"), 1007),
        ("truncated UTF-8 at message end", lambda: frame(OP_TEXT, b"i \xe2\x82"), 1007),
        ("invalid UTF-8 across fragments",
         lambda: frame(OP_TEXT, b"i \xe2", fin=False) + frame(OP_CONT, b"\x28\xa1"), 1007),
        ("invalid UTF-8 close reason",
         lambda: frame(OP_CLOSE, close_payload(1000, b"\xff")), 1007),
        ("message over the limit", lambda: frame(OP_TEXT, "i " + "m" * 999), 1009),
        ("binary message over the limit", lambda: frame(OP_BIN, b"m" * 1001), 1009),
        ("fragments over the limit",
         lambda: frame(OP_TEXT, "i " + "m" * 600, fin=False) + frame(OP_CONT, "m" * 600), 1009),
        ("huge declared length, no payload", lambda: frame(OP_TEXT, length=1 << 40), 1009),
    ]

    def setUp(self):
        super().setUp()
        self.d = self.ws_daemon(ws_args=["--ws-max-message", str(self.LIMIT)])
        self.t = self.tcp(self.d)
        self.holder = self.raw(self.d)
        self.assertEqual(self.holder.req("g victim"), g_ok("victim"))
        self.assertEqual(self.holder.req("sg svictim"), sg_ok(1, "svictim"))
        self.assertEqual(self.t.req("g tcpvictim"), g_ok("tcpvictim"))

    def bystanders_intact(self):
        t, h = self.t, self.holder
        self.assertEqual(t.req("i victim"), i_yes("victim"))
        self.assertEqual(t.req("g victim"), g_fail("victim"))
        self.assertEqual(t.req("si svictim"), si_yes(1, "svictim"))
        self.assertEqual(h.req("g victim"), g_ok("victim"))  # still the holder
        self.assertEqual(h.req("g tcpvictim"), g_fail("tcpvictim"))
        self.assertEqual(t.req("g tcpvictim"), g_ok("tcpvictim"))

    def test_violations_close_with_rfc_codes(self):
        for k, (name, make, code) in enumerate(self.VIOLATIONS):
            with self.subTest(violation=name):
                before = self.t.q()
                w = self.raw(self.d)
                lock = "violator%d" % k
                self.assertEqual(w.req("g " + lock), g_ok(lock))
                w.send(make())
                got, reason = w.expect_close()
                self.assertEqual(got, code, "%s: close code %r reason %r" % (name, got, reason))
                reason.decode("utf-8")
                w.close()
                self.settle(self.t, orphans=before["orphans"] + 1,
                            connections=before["connections"])
                self.assertEqual(self.t.req("i " + lock), i_no(lock))
                self.bystanders_intact()

    def test_message_at_the_limit_is_served(self):
        w = self.raw(self.d)
        name = "l" * (self.LIMIT - 2)
        self.assertEqual(w.req("i " + name), i_no(name))
        # Fragmented, exactly at the limit, as well.
        w.send(frame(OP_TEXT, "i " + name[:500], fin=False) + frame(OP_CONT, name[500:]))
        self.assertEqual(w.answer(), i_no(name))
        self.bystanders_intact()

    def test_valid_requests_before_a_violation_in_the_same_write(self):
        w = self.raw(self.d)
        w.send(frame(OP_TEXT, "g early") + frame(OP_TEXT, "i early") +
               frame(OP_TEXT, "x", mask=False))
        self.assertEqual(w.answer(), g_ok("early"))
        self.assertEqual(w.answer(), i_yes("early"))
        self.assertEqual(w.expect_close()[0], 1002)
        self.wait_answer(self.t, "i early", i_no("early"))
        self.bystanders_intact()

    def test_violation_while_blocked_in_w(self):
        # A connection queued in w that then breaks the protocol leaves the
        # queue: the lock goes to nobody when its holder releases it.
        w = self.raw(self.d)
        w.text("w 60000 tcpvictim")
        self.assertTrue(w.nothing_within(0.2))
        w.send(frame(OP_TEXT, "i x", rsv=4))
        self.assertEqual(w.expect_close()[0], 1002)
        w.close()
        self.assertEqual(self.t.req("r tcpvictim"), r_ok("tcpvictim"))
        self.assertEqual(self.t.req("i tcpvictim"), i_no("tcpvictim"))
        self.assertEqual(self.t.req("g tcpvictim"), g_ok("tcpvictim"))
        self.bystanders_intact()


class UpgradeRequests(WsTestCase):

    def handshake(self, d, head):
        s = RawWS.open_socket(d.ws_port)
        self.addCleanup(s.close)
        s.sendall(head)
        return read_http_head(s)

    def test_origin_allowlist(self):
        good, other = "http://good.example", "https://other.example:8443"
        d = self.ws_daemon(ws_args=["--ws-origin", good, "--ws-origin", other])
        t = self.tcp(d)
        self.assertEqual(t.req("g bystander"), g_ok("bystander"))
        holder = self.raw(d)  # no Origin header: allowed
        self.assertEqual(holder.req("g wsbystander"), g_ok("wsbystander"))
        for origin in (good, other):
            w = self.raw(d, origin=origin)
            self.assertEqual(w.req("i bystander"), i_yes("bystander"))
            w.close()

        async def lib():
            ws = await lib_connect(d, origin=good)
            try:
                self.assertEqual(await lib_req(ws, "i wsbystander"), s(i_yes("wsbystander")))
            finally:
                await ws.close()
            with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
                ws = await lib_connect(d, origin="http://evil.example")
                await ws.close()
            self.assertEqual(cm.exception.status_code, 403)

        run(lib())
        for bad in ("http://evil.example", "http://good.example:81", "null",
                    "https://good.example"):
            with self.subTest(origin=bad):
                key = base64.b64encode(os.urandom(16))
                sock = RawWS.open_socket(d.ws_port)
                self.addCleanup(sock.close)
                sock.sendall(RawWS.upgrade_head(d.ws_port, key, bad))
                status, headers, rest = read_http_head(sock)
                self.assertEqual(status, 403)
                self.assertNotIn("sec-websocket-accept", headers)
                # then the daemon closes the connection
                w = RawWS(sock, rest)
                n = int(headers.get("content-length", "0"))
                while len(w.buf) < n:
                    w._fill(time.monotonic() + TIMEOUT)
                w.buf = w.buf[n:]
                w.expect_end()
        # Refusals are logged as warnings (rate limited: the first one at least).
        self.wait_log_line(d, "warning", "http://evil.example")
        self.assertEqual(holder.req("i wsbystander"), i_yes("wsbystander"))
        self.assertEqual(t.req("i wsbystander"), i_yes("wsbystander"))
        self.assertEqual(holder.req("i bystander"), i_yes("bystander"))

    def test_bad_upgrade_requests(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        self.assertEqual(t.req("g bystander"), g_ok("bystander"))
        key = base64.b64encode(os.urandom(16))
        # RFC 6455 4.4: an unsupported version gets 426 naming version 13.
        head = RawWS.upgrade_head(d.ws_port, key).replace(
            b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
        status, headers, _ = self.handshake(d, head)
        self.assertEqual(status, 426)
        self.assertEqual(headers.get("sec-websocket-version"), "13")
        # RFC 6455 4.2.1/4.2.2: a missing or malformed key is a bad request.
        head = RawWS.upgrade_head(d.ws_port, key).replace(b"Sec-WebSocket-Key: " + key + b"\r\n",
                                                          b"")
        self.assertEqual(self.handshake(d, head)[0], 400)
        head = RawWS.upgrade_head(d.ws_port, b"c2hvcnQ=")  # "short": not 16 bytes
        self.assertEqual(self.handshake(d, head)[0], 400)
        # An upgrade on POST is not served.
        head = RawWS.upgrade_head(d.ws_port, key).replace(b"GET ", b"POST ", 1)
        self.assertIn(self.handshake(d, head)[0], (400, 405))
        self.assertEqual(t.req("i bystander"), i_yes("bystander"))
        # Frames sent right behind the head, in the same write, are served.
        sock = RawWS.open_socket(d.ws_port)
        self.addCleanup(sock.close)
        sock.sendall(RawWS.upgrade_head(d.ws_port, key) + frame(OP_TEXT, "i bystander"))
        status, headers, rest = read_http_head(sock)
        self.assertEqual(status, 101)
        self.assertEqual(RawWS(sock, rest).answer(), i_yes("bystander"))


class Part2OverWebSocket(WsTestCase):

    def test_w_blocks_and_later_messages_wait_behind_it(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        self.assertEqual(t.req("g wl"), g_ok("wl"))
        w = self.raw(d)
        w.text("w 60000 wl")
        w.text("i other")
        w.text("g second")
        self.assertTrue(w.nothing_within(0.3), "answered while blocked: %r" % w.buf)
        # the message behind the blocked w has not run either
        self.assertEqual(t.req("i second"), i_no("second"))
        self.assertEqual(t.req("r wl"), r_ok("wl"))
        self.assertEqual(w.answer(), g_ok("wl"))
        self.assertEqual(w.answer(), i_no("other"))
        self.assertEqual(w.answer(), g_ok("second"))
        self.assertEqual(t.req("i wl"), i_yes("wl"))
        self.assertEqual(t.req("g wl"), g_fail("wl"))
        # Pipelined in one message, with a time-out.
        self.assertEqual(t.req("g wl2"), g_ok("wl2"))
        w.text("w 50 wl2\ni wl2\nt wl")
        self.assertEqual(w.answer(), g_fail("wl2"))
        self.assertEqual(w.answer(), i_yes("wl2"))
        tok = w.answer()
        self.assertRegex(tok, rb"^[1-9][0-9]* Lock Token: wl\n$")
        # ping is answered while a w blocks the request stream
        w.text("w 60000 wl2")
        w.text("i after-ping")
        w.send(frame(OP_PING, b"blocked"))
        self.assertEqual(w.frame(), (True, OP_PONG, b"blocked"))
        self.assertEqual(t.req("r wl2"), r_ok("wl2"))
        self.assertEqual(w.answer(), g_ok("wl2"))
        self.assertEqual(w.answer(), i_no("after-ping"))

    def test_waiter_that_vanishes_leaves_the_queue(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        self.assertEqual(t.req("g q1"), g_ok("q1"))
        w1, w2 = self.raw(d), self.raw(d)
        w1.text("w 60000 q1")
        self.assertTrue(w1.nothing_within(0.2))
        w2.text("w 60000 q1")
        self.assertTrue(w2.nothing_within(0.2))
        before = t.q()
        w1.reset()
        self.settle(t, connections=before["connections"] - 1)
        self.assertEqual(t.req("r q1"), r_ok("q1"))
        self.assertEqual(w2.answer(), g_ok("q1"))  # w1 left: w2 is next
        self.assertEqual(t.req("g q1"), g_fail("q1"))
        # sw over websocket: a semaphore of 2
        self.assertEqual(w2.req("sw 2 1000 sem"), sg_ok(1, "sem"))
        self.assertEqual(t.req("sw 2 1000 sem"), sg_ok(2, "sem"))
        w3 = self.raw(d)
        self.assertEqual(w3.req("sw 2 50 sem"), b"0 Shared Lock Get Failure: sem\n")
        self.assertRegex(w3.req("w x 1"), rb"^0 Bad Request: .*\n$")

    def test_grace_session_resume_and_ra_over_websocket(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        w = self.raw(d)
        self.assertEqual(w.req("grace 60000"), b"1 Grace Set: 60000\n")
        sess = w.req("session")
        m = re.match(rb"^1 Session: (\S+)\n$", sess)
        self.assertTrue(m, sess)
        token = m.group(1)
        self.assertEqual(w.req("g kept"), g_ok("kept"))
        self.assertEqual(w.req("sg skept"), sg_ok(1, "skept"))
        tok1 = int(w.req("t kept").split(b" ")[0])
        self.assertGreaterEqual(tok1, 1)
        before = t.q()
        w.reset()
        self.settle(t, connections=before["connections"] - 1)
        self.assertEqual(t.req("i kept"), i_yes("kept"))  # kept for the grace period
        w2 = self.raw(d)
        self.assertEqual(w2.req(b"resume " + token), b"1 Resume Success: 1 1\n")
        self.assertEqual(int(w2.req("t kept").split(b" ")[0]), tok1)
        self.assertEqual(w2.req("ra"), b"1 Release All Success: 1 1\n")
        self.assertEqual(t.req("i kept"), i_no("kept"))
        self.assertEqual(w2.req(b"resume " + token), b"0 Resume Failure\n")
        after = t.q()
        self.assertEqual(after["orphans"], before["orphans"])
        # With grace 0 (glockd behaviour) a websocket drop orphans at once.
        self.assertEqual(w2.req("grace 0"), b"1 Grace Set: 0\n")
        self.assertEqual(w2.req("g notkept"), g_ok("notkept"))
        w2.send(frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(w2.expect_close()[0], 1000)
        self.settle(t, orphans=before["orphans"] + 1)
        self.assertEqual(t.req("i notkept"), i_no("notkept"))


class HttpEndpoints(WsTestCase):

    def test_healthz_404_405_400_431(self):
        d = self.ws_daemon()
        t = self.tcp(d)
        self.assertEqual(t.req("g bystander"), g_ok("bystander"))
        holder = self.raw(d)
        self.assertEqual(holder.req("g wsbystander"), g_ok("wsbystander"))

        status, headers, body = get(d.ws_port, "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        status, _, body = get(d.ws_port, "/healthz?probe=1")
        self.assertEqual((status, body), (200, b"ok\n"))
        for path in ("/", "/nope", "/metrics/x", "/healthzz", "/HEALTHZ"):
            with self.subTest(path=path):
                self.assertEqual(get(d.ws_port, path)[0], 404)
        for method, body in ((b"POST", b""), (b"DELETE", b""), (b"HEAD", b""),
                             (b"OPTIONS", b""), (b"PUT", b""),
                             # a well-formed request with a body is still a
                             # non-GET request: 405 (RFC 9110 15.5.6), not 400
                             (b"POST", b"x=1"), (b"PUT", b"x=1")):
            with self.subTest(method=method, body=body):
                raw = (method + b" /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                       (b"Content-Length: %d\r\n" % len(body) if body else b"") +
                       b"\r\n" + body)
                if method == b"HEAD":
                    sck = RawWS.open_socket(d.ws_port)
                    self.addCleanup(sck.close)
                    sck.sendall(raw)
                    status, headers, rest = read_http_head(sck)
                    # RFC 9110 9.3.2 / RFC 9112 6.3: a response to HEAD has
                    # no content, whatever its Content-Length says.
                    w = RawWS(sck, rest)
                    try:
                        while True:
                            w._fill(time.monotonic() + TIMEOUT)
                    except Closed:
                        pass
                    self.assertEqual(w.buf, b"", "content in a response to HEAD")
                    # HEAD is served like GET, without the content.
                    self.assertEqual(status, 200)
                    self.assertGreater(int(headers.get("content-length", "0")), 0, headers)
                    continue
                status, headers, _ = http_exchange(d.ws_port, raw)
                self.assertEqual(status, 405)
                self.assertIn("GET", headers.get("allow", ""), headers)  # RFC 9110 15.5.6
        for raw in (b"GARBAGE\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
                    b"GET /healthz\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"):
            with self.subTest(raw=raw[:40]):
                self.assertEqual(http_exchange(d.ws_port, raw)[0], 400)
        # 431: a head over --http-max-header (default 8192).
        big = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
        self.assertEqual(http_exchange(d.ws_port, big)[0], 431)
        many = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"X-H: 12345678\r\n" * 700 + b"\r\n"
        self.assertEqual(http_exchange(d.ws_port, many)[0], 431)
        # A head just under the bound is served.
        pad = 8192 - len(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n") - 16
        ok = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n"
        self.assertEqual(http_exchange(d.ws_port, ok)[:3:2], (200, b"ok\n"))
        # HTTP/1.0 without Host is fine.
        self.assertEqual(http_exchange(d.ws_port, b"GET /healthz HTTP/1.0\r\n\r\n")[::2],
                         (200, b"ok\n"))
        # Everyone's locks are where they were; the daemon still serves.
        self.assertEqual(t.req("i wsbystander"), i_yes("wsbystander"))
        self.assertEqual(holder.req("i bystander"), i_yes("bystander"))
        self.assertEqual(holder.req("g wsbystander"), g_ok("wsbystander"))

    def test_metrics_match_q(self):
        d = self.ws_daemon(unix=True)
        t1, t2 = self.tcp(d), self.tcp(d)
        u = self.client(d, "unix")
        w = self.raw(d)
        # Some state: locks, shared locks, a waiter, an orphan, a detached
        # session, invalid commands, Part 2 commands.
        self.assertEqual(t1.req("g a"), g_ok("a"))
        self.assertEqual(u.req("g b"), g_ok("b"))
        self.assertEqual(w.req("g c"), g_ok("c"))
        self.assertEqual(w.req("sg s1"), sg_ok(1, "s1"))
        self.assertEqual(t2.req("sg s1"), sg_ok(2, "s1"))
        self.assertEqual(t2.req("sg s2"), sg_ok(1, "s2"))
        t2.assert_silent("bogus\n")
        w.assert_silent("bogus2")
        self.assertRegex(t1.req("t a"), rb"^[1-9]\d* Lock Token: a\n$")
        gone = self.raw(d)
        self.assertEqual(gone.req("g orphan-me"), g_ok("orphan-me"))
        self.assertEqual(gone.req("sg sorphan-me"), sg_ok(1, "sorphan-me"))
        gone.reset()
        det = self.raw(d)
        self.assertEqual(det.req("grace 60000"), b"1 Grace Set: 60000\n")
        self.assertEqual(det.req("g detached"), g_ok("detached"))
        det.reset()
        w.text("w 60000 a")  # waits behind t1
        self.settle(t1, orphans=1, shared_orphans=1, connections=4)
        deadline = time.monotonic() + TIMEOUT
        while True:  # the w has reached the daemon (another connection)
            status, headers, body = get(d.ws_port, "/metrics")
            if b"\nglockd_waiters 1\n" in body or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        q = t1.q()
        self.assertEqual(status, 200)
        ctype = headers.get("content-type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertRegex(ctype, r";\s*version=0\.0\.4(\s*;|$)")
        m, types = parse_metrics(body.decode("utf-8"))

        def v(name, labels=""):
            key = (name, labels)
            self.assertIn(key, m, "missing %s%s in\n%s" % (name, labels, body.decode()))
            return m[key]

        for key in ("d", "dump", "g", "i", "iam", "me", "r", "sd", "sg", "si", "sr", "who"):
            self.assertEqual(v("glockd_requests_total", '{command="%s"}' % key), q["command_" + key],
                             key)
        self.assertEqual(v("glockd_requests_total", '{command="q"}'), q["command_q"] - 1)
        for key in ("w", "sw", "t", "ra", "grace", "session", "resume"):
            self.assertIn(("glockd_requests_total", '{command="%s"}' % key), m)
        self.assertEqual(v("glockd_requests_total", '{command="t"}'), 1)
        self.assertEqual(v("glockd_requests_total", '{command="w"}'), 1)
        self.assertEqual(v("glockd_requests_total", '{command="grace"}'), 1)
        self.assertEqual(v("glockd_requests_total", '{command="session"}'), 0)
        self.assertEqual(v("glockd_locks"), q["locks"])
        self.assertEqual(q["locks"], 4)  # a, b, c, detached
        self.assertEqual(v("glockd_shared_locks"), q["shared_locks"])
        self.assertEqual(q["shared_locks"], 2)
        self.assertEqual(v("glockd_orphans_total"), q["orphans"])
        self.assertEqual(v("glockd_shared_orphans_total"), q["shared_orphans"])
        self.assertEqual(v("glockd_invalid_commands_total"), q["invalid_commands"])
        self.assertEqual(q["invalid_commands"], 2)
        self.assertEqual(v("glockd_waiters"), 1)
        self.assertEqual(v("glockd_detached_sessions"), 1)
        # Open now: t1, t2, u, w and this HTTP request itself on the ws port.
        self.assertEqual(v("glockd_transport_connections", '{transport="tcp"}'), 2)
        self.assertEqual(v("glockd_transport_connections", '{transport="unix"}'), 1)
        self.assertEqual(v("glockd_transport_connections", '{transport="ws"}'), 2)
        self.assertEqual(v("glockd_connections"), 5)
        self.assertEqual(q["connections"], 4)
        # t1, t2, u, w, gone, det and at least one GET /metrics (the harness
        # waits for READY=1 and no longer connects to see if it is up).
        self.assertGreaterEqual(v("glockd_connections_accepted_total"), 7)
        self.assertGreater(v("glockd_lock_table_bytes"), 0)
        self.assertGreater(v("glockd_uptime_seconds"), 0)
        self.assertGreater(v("glockd_received_bytes_total"), 100)
        self.assertGreater(v("glockd_sent_bytes_total"), 100)
        for name in ("glockd_requests_total", "glockd_orphans_total",
                     "glockd_received_bytes_total", "glockd_sent_bytes_total",
                     "glockd_connections_accepted_total", "glockd_invalid_commands_total",
                     "glockd_shared_orphans_total"):
            self.assertEqual(types.get(name), "counter", name)
        for name in ("glockd_connections", "glockd_locks", "glockd_shared_locks",
                     "glockd_waiters", "glockd_lock_table_bytes", "glockd_detached_sessions",
                     "glockd_transport_connections", "glockd_uptime_seconds"):
            self.assertEqual(types.get(name), "gauge", name)

        # Later figures move the right way.
        self.assertEqual(t1.req("r a"), r_ok("a"))
        self.assertEqual(w.answer(), g_ok("a"))
        t2.close()
        self.settle(t1, shared_orphans=3, connections=3)
        _, _, body2 = get(d.ws_port, "/metrics")
        m2, _ = parse_metrics(body2.decode("utf-8"))
        q2 = t1.q()
        self.assertEqual(m2[("glockd_waiters", "")], 0)
        self.assertEqual(m2[("glockd_locks", "")], q2["locks"])
        self.assertEqual(m2[("glockd_shared_locks", "")], q2["shared_locks"])
        self.assertEqual(m2[("glockd_shared_orphans_total", "")], q2["shared_orphans"])
        self.assertEqual(m2[("glockd_transport_connections", '{transport="tcp"}')], 1)
        for name in ("glockd_received_bytes_total", "glockd_sent_bytes_total",
                     "glockd_connections_accepted_total"):
            self.assertGreater(m2[(name, "")], m[(name, "")], name)
        # Two scrapes may fall in the same millisecond: uptime only never falls.
        self.assertGreaterEqual(m2[("glockd_uptime_seconds", "")], m[("glockd_uptime_seconds", "")])
        self.assertEqual(m2[("glockd_requests_total", '{command="r"}')], q2["command_r"])
        self.assertEqual(w.req("i a"), i_yes("a"))

    def test_slow_loris_dropped_after_handshake_timeout(self):
        d = self.ws_daemon(ws_args=["--ws-handshake-timeout", "1"])
        t = self.tcp(d)
        self.assertEqual(t.req("g bystander"), g_ok("bystander"))
        holder = self.raw(d)  # upgraded before the slow clients came
        self.assertEqual(holder.req("g wsbystander"), g_ok("wsbystander"))
        started = time.monotonic()
        loris = RawWS.open_socket(d.ws_port)
        self.addCleanup(loris.close)
        loris.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        silent = RawWS.open_socket(d.ws_port)  # sends nothing at all
        self.addCleanup(silent.close)
        upgrading = RawWS.open_socket(d.ws_port)  # half an upgrade head
        self.addCleanup(upgrading.close)
        key = base64.b64encode(os.urandom(16))
        upgrading.sendall(RawWS.upgrade_head(d.ws_port, key)[:60])
        for sock in (loris, silent, upgrading):
            got = b""
            deadline = started + 3 * TIMEOUT
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.fail("a slow client was not dropped; got %r" % got)
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got == b"" or got.startswith(b"HTTP/1.1 408 "), got)
        # The websocket connection made before is older than the time-out
        # by now and must still be there, with its lock.
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        self.assertEqual(holder.req("i bystander"), i_yes("bystander"))
        self.assertEqual(t.req("i wsbystander"), i_yes("wsbystander"))
        self.assertEqual(t.req("g wsbystander"), g_fail("wsbystander"))
        self.assertEqual(holder.req("r wsbystander"), r_ok("wsbystander"))
        # and the port keeps serving
        self.assertEqual(get(d.ws_port, "/healthz")[::2], (200, b"ok\n"))


class QueuedBehindAWait(WsTestCase):
    """Requests behind a blocked `w` queue up to 1 MiB, or one whole message
    of the largest size allowed; past that: a Bad Request message, then
    close 1008 (a hostile review found a 1 MiB message, which is allowed,
    dropping the connection)."""

    def waiting(self, d):
        holder = self.tcp(d)
        self.assertEqual(holder.req("g L"), g_ok("L"))
        w = self.raw(d)
        self.assertEqual(w.req("g K"), g_ok("K"))
        w.text("w 600000 L")
        return holder, w

    def test_one_message_of_the_largest_size_waits_and_is_answered(self):
        d = self.ws_daemon()
        holder, w = self.waiting(d)
        count = (1 << 20) // 4  # 1 MiB of "i K\n", the --ws-max-message default
        w.text(b"i K\n" * count)
        self.assertTrue(w.nothing_within(0.2))  # still waiting behind the w
        self.assertEqual(holder.req("r L"), r_ok("L"))
        self.assertEqual(w.answer(), g_ok("L"))
        for _ in range(count):  # one message per answer
            self.assertEqual(w.answer(), i_yes("K"))
        self.assertEqual(w.req("r K"), r_ok("K"))

    def test_more_than_that_is_refused_and_closed_with_1008(self):
        d = self.ws_daemon()
        holder, w = self.waiting(d)
        big = b"i K\n" * ((1 << 20) // 4)
        w.send(frame(OP_TEXT, big) + frame(OP_TEXT, big))
        self.assertEqual(w.answer(), b"0 Bad Request: too many requests queued behind a wait\n")
        code, reason = w.expect_close()
        self.assertEqual(code, 1008)
        self.assertEqual(reason, b"too many requests queued behind a wait")
        probe = self.tcp(d)
        self.wait_answer(probe, "i K", i_no("K"))


if __name__ == "__main__":
    unittest.main()

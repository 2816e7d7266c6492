# Shared helpers for the glockd black-box integration tests: start the real
# daemon on a free port / temp unix socket, talk to it, stop it and check it.
#
# Standard library only; run the test files with /usr/bin/python3.
# The daemon binary comes from $GLOCKD_BIN (default /work/main/build/glockd).

import os
import re
import select
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ports  # noqa: E402  (tests/ports.py)

BIN = os.environ.get("GLOCKD_BIN", "/work/main/build/glockd")

# Generous bound for anything that waits on the daemon. Only there to never
# hang; no test asserts how fast something happens.
TIMEOUT = float(os.environ.get("GLOCKD_TEST_TIMEOUT", "10"))

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

Q_KEYS = [
    "command_d", "command_dump", "command_g", "command_i", "command_iam",
    "command_me", "command_q", "command_r", "command_sd", "command_sg",
    "command_si", "command_sr", "command_who", "connections",
    "invalid_commands", "locks", "orphans", "shared_locks", "shared_orphans",
]


def b(x):
    """Bytes from str (UTF-8) or bytes."""
    return x if isinstance(x, bytes) else x.encode("utf-8")


def free_port():
    """A TCP port that was free on loopback a moment ago (tests/ports.py)."""
    return ports.free_port()


def require_binary():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        raise RuntimeError(
            "glockd binary not found or not executable: %s (set GLOCKD_BIN)" % BIN)


def check_sanitizer_output(text, what="daemon"):
    for marker in SANITIZER_MARKERS:
        if marker in text:
            raise AssertionError("%s stderr contains %r:\n%s" % (what, marker, tail(text)))


def tail(text, n=4000):
    return text if len(text) <= n else "...\n" + text[-n:]


# --------------------------------------------------------------------------
# Client


class Client:
    """One connection to the daemon. Every read has a deadline."""

    def __init__(self, sock, kind):
        self.sock = sock
        self.kind = kind  # "tcp", "tcp6" or "unix"
        self.buf = b""
        sock.settimeout(TIMEOUT)
        self._sentinel_n = 0
        self._tag = os.urandom(4).hex()

    # -- connecting

    @classmethod
    def tcp(cls, port, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect((host, port))
        except Exception:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, "tcp6" if fam == socket.AF_INET6 else "tcp")

    @classmethod
    def unix(cls, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(path)
        except Exception:
            s.close()
            raise
        return cls(s, "unix")

    def addr(self):
        """The ADDR the daemon should use for this connection (TCP only)."""
        if self.kind == "tcp":
            h, p = self.sock.getsockname()[:2]
            return "%s:%d" % (h, p)
        if self.kind == "tcp6":
            h, p = self.sock.getsockname()[:2]
            return "[%s]:%d" % (h, p)
        raise ValueError("unix connections have no client-side ADDR")

    # -- sending

    def send(self, data):
        self.sock.sendall(b(data))

    # -- receiving

    def readline(self):
        """One answer line, including its b'\\n'."""
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for an answer line; "
                                     "received so far: %r" % self.buf)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("timed out waiting for an answer line; "
                                     "received so far: %r" % self.buf)
            except ConnectionResetError:
                raise AssertionError("connection reset by the daemon; "
                                     "received so far: %r" % self.buf)
            if not chunk:
                raise AssertionError("daemon closed the connection; "
                                     "received so far: %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def lines(self, n):
        return [self.readline() for _ in range(n)]

    def req(self, line, n=1):
        """Send one request (a newline is appended) and read n answer lines.
        Returns the line (bytes) when n == 1, else a list of lines."""
        self.send(b(line) + b"\n")
        if n == 1:
            return self.readline()
        return self.lines(n)

    def sentinel(self):
        self._sentinel_n += 1
        return b"__end_%s_%d" % (self._tag.encode(), self._sentinel_n)

    def multi(self, line, max_lines=100000):
        """Send a request followed by `i <random name>` and return every line
        received before that i's answer (answers are strictly ordered).
        Note: adds one to command_i."""
        s = self.sentinel()
        end = b"0 Lock Not Locked: " + s + b"\n"
        self.send(b(line) + b"\n" + b"i " + s + b"\n")
        out = []
        for _ in range(max_lines):
            ln = self.readline()
            if ln == end:
                return out
            out.append(ln)
        raise AssertionError("no end of answer after %d lines" % max_lines)

    def assert_silent(self, raw):
        """Send raw bytes (complete lines) that must get no answer at all."""
        s = self.sentinel()
        end = b"0 Lock Not Locked: " + s + b"\n"
        self.send(b(raw) + b"i " + s + b"\n")
        ln = self.readline()
        if ln != end:
            raise AssertionError("expected no answer to %r, got %r" % (b(raw)[:200], ln[:300]))

    def q(self):
        """Send q and parse exactly the 19 stats lines into a dict."""
        self.send(b"q\n")
        out = {}
        for ln in self.lines(len(Q_KEYS)):
            m = re.match(rb"^([a-z_]+): (\d+)\n$", ln)
            if not m:
                raise AssertionError("malformed q line: %r" % ln)
            out[m.group(1).decode()] = int(m.group(2))
        if sorted(out) != Q_KEYS:
            raise AssertionError("q keys differ: %r" % sorted(out))
        return out

    def expect_eof(self):
        """The daemon closes the connection (orderly FIN) with nothing left."""
        deadline = time.monotonic() + TIMEOUT
        data = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no EOF from the daemon; got %r" % data)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no EOF from the daemon; got %r" % data)
            except ConnectionResetError:
                raise AssertionError("connection reset instead of EOF; got %r" % data)
            if not chunk:
                return data
            data += chunk

    # -- closing

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Abortive close: SO_LINGER {1, 0} then close sends an RST."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def exchange(sock, data, expected_len, timeout=30.0):
    """Send data while reading answers (so neither side can block the other)
    until expected_len bytes arrived. Returns the bytes received."""
    sock.setblocking(False)
    out = bytearray()
    view = memoryview(data)
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected_len:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("exchange timed out: sent %d/%d, received %d/%d bytes"
                                     % (sent, len(data), len(out), expected_len))
            wl = [sock] if sent < len(data) else []
            r, w, _ = select.select([sock], wl, [], min(remaining, 1.0))
            if w:
                try:
                    sent += sock.send(view[sent:sent + 65536])
                except BlockingIOError:
                    pass
            if r:
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise AssertionError("daemon closed the connection after %d bytes" % len(out))
                out += chunk
    finally:
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
    return bytes(out)


# --------------------------------------------------------------------------
# Daemon


class Daemon:
    """One glockd process.

    tcp:       listen on TCP (a free port is picked; --bind 127.0.0.1)
    ipv6:      also --bind ::1
    unix:      also --unix <tmpdir>/glockd.sock (or unix_path)
    pidfile:   True for <tmpdir>/glockd.pid, or a path
    args:      extra arguments appended
    argv:      callable(daemon) -> full argument list (replaces the defaults;
               use daemon.port / daemon.unix_path / daemon.pidfile)
    port:      a fixed port (no retry on "in use")
    umask:     the daemon's umask (-1: inherit)
    prefix:    a command that runs the daemon (e.g. a seccomp wrapper)
    session:   True: a session of its own. False: only a process group of
               its own, in the test's session, so that job-control stops
               (SIGTSTP, SIGTTIN, SIGTTOU) are not discarded by the kernel as
               they are for an orphaned process group

    start() returns once the daemon said READY=1 on the NOTIFY_SOCKET the
    harness gives it (sd_notify, sent once it serves every listener).
    """

    def __init__(self, tmpdir, tcp=True, ipv6=False, unix=False, unix_path=None,
                 pidfile=None, args=(), argv=None, port=None, name="glockd", umask=-1,
                 prefix=(), session=True):
        self.tmpdir = tmpdir
        self.tcp = tcp
        self.ipv6 = ipv6
        self.unix_path = unix_path or (os.path.join(tmpdir, "%s.sock" % name) if unix else None)
        if pidfile is True:
            pidfile = os.path.join(tmpdir, "%s.pid" % name)
        self.pidfile = pidfile
        self.extra = list(args)
        self.argv_fn = argv
        self.fixed_port = port
        self.port = 0
        self.name = name
        self.umask = umask
        self.prefix = list(prefix)
        self.session = session
        self.proc = None
        self.notify = None
        self.stderr_path = None
        self.stdout_path = None
        self.argv = None
        self._n = 0

    def default_argv(self):
        a = ["--port", str(self.port), "--ws", "0"]
        if self.tcp:
            a += ["--bind", "127.0.0.1"]
            if self.ipv6:
                a += ["--bind", "::1"]
        if self.unix_path:
            a += ["--unix", self.unix_path]
        if self.pidfile:
            a += ["--pidfile", self.pidfile]
        return a + self.extra

    def spawn(self):
        """Start the process without waiting for it to be ready."""
        self._n += 1
        self.stderr_path = os.path.join(self.tmpdir, "%s.%d.stderr" % (self.name, self._n))
        self.stdout_path = os.path.join(self.tmpdir, "%s.%d.stdout" % (self.name, self._n))
        self.argv = self.prefix + [BIN] + (self.argv_fn(self) if self.argv_fn else self.default_argv())
        self._close_notify()
        notify_path = os.path.join(self.tmpdir, "%s.%d.notify" % (self.name, self._n))
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=env, umask=self.umask,
                                         start_new_session=self.session,
                                         process_group=None if self.session else 0)

    def _close_notify(self):
        if self.notify is not None:
            path = self.notify.getsockname()
            self.notify.close()
            self.notify = None
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def start(self):
        attempts = 1 if (self.fixed_port is not None or not self.tcp) else 5
        for attempt in range(attempts):
            self.port = self.fixed_port if self.fixed_port is not None else (
                free_port() if self.tcp else 0)
            self.spawn()
            why = self.wait_ready()
            if why is None:
                return self
            if "in use" in why.lower() and attempt + 1 < attempts:
                continue
            raise AssertionError("glockd did not start (%s)\nargv: %r\nstderr:\n%s"
                                 % (why, self.argv, tail(self.stderr())))
        raise AssertionError("unreachable")

    def wait_ready(self):
        """None once the daemon sent READY=1, else why not (it exited, or
        the deadline passed and it was killed)."""
        deadline = time.monotonic() + TIMEOUT
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    return "no READY=1 within %.0f s" % TIMEOUT
                readable, _, _ = select.select([self.notify, pidfd], [], [], remaining)
                if self.notify in readable:
                    if b"READY=1" in self.notify.recv(4096).split(b"\n"):
                        self._close_notify()
                        return None
                elif pidfd in readable:
                    rc = self.proc.wait()
                    return "exited with %d: %s" % (rc, self.stderr()[-2000:])
        finally:
            os.close(pidfd)

    # -- clients

    def client(self, kind="tcp"):
        if kind == "tcp":
            return Client.tcp(self.port, "127.0.0.1")
        if kind == "tcp6":
            return Client.tcp(self.port, "::1")
        if kind == "unix":
            return Client.unix(self.unix_path)
        raise ValueError(kind)

    # -- state

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        if not self.stderr_path:
            return ""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        if not self.stdout_path:
            return ""
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, timeout=TIMEOUT):
        """Wait for the process to exit by itself; returns its exit code."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("glockd still running after %.0f s (argv %r)\nstderr:\n%s"
                                 % (timeout, self.argv, tail(self.stderr())))
        self._close_notify()
        check_sanitizer_output(self.stderr())
        return rc

    def stop(self, sig=signal.SIGTERM, expect_rc=0):
        """Signal, wait (bounded), check exit code and sanitizer output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("glockd did not exit within %.0f s of %s\nstderr:\n%s"
                                 % (TIMEOUT, signal.Signals(sig).name, tail(self.stderr())))
        self._close_notify()
        err = self.stderr()
        check_sanitizer_output(err)
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("glockd exited with %d after %s, expected %d\nstderr:\n%s"
                                 % (rc, signal.Signals(sig).name, expect_rc, tail(err)))
        return rc

    def kill(self):
        self._close_notify()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass


# --------------------------------------------------------------------------
# Test case base


class DaemonTestCase(unittest.TestCase):
    """Gives each test a temp dir; daemons started with self.daemon() are
    stopped at the end with SIGTERM, must exit 0 and must not report
    sanitizer errors."""

    @classmethod
    def setUpClass(cls):
        require_binary()

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="glockd-it-")
        self.addCleanup(self._tmp.cleanup)
        self.tmp = self._tmp.name

    def daemon(self, **kw):
        d = Daemon(self.tmp, **kw)
        self.addCleanup(self._finish, d)
        d.start()
        return d

    def _finish(self, d):
        if d.running():
            d.stop()
        else:
            d.kill()

    def client(self, d, kind="tcp"):
        c = d.client(kind)
        self.addCleanup(c.close)
        return c

    # -- helpers with polling (bounded; for state the daemon reaches
    #    asynchronously, e.g. after a peer's close)

    def settle(self, c, **want):
        """Send q until every given key has the given value; returns
        (number of q sent, last snapshot)."""
        deadline = time.monotonic() + TIMEOUT
        n = 0
        while True:
            snap = c.q()
            n += 1
            if all(snap[k] == v for k, v in want.items()):
                return n, snap
            if time.monotonic() > deadline:
                self.fail("stats never reached %r; last q: %r" % (want, snap))
            time.sleep(0.01)

    def wait_answer(self, c, line, want):
        """Repeat a one-line request until it answers `want`."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            got = c.req(line)
            if got == want:
                return
            if time.monotonic() > deadline:
                self.fail("%r kept answering %r, expected %r" % (line, got, want))
            time.sleep(0.01)

    def serving(self, d, kind=None):
        """One request/answer round trip: the daemon's loop is running.
        (Tests that are not about start-up races do this before stopping.)"""
        kind = kind or ("tcp" if d.tcp else "unix")
        c = d.client(kind)
        try:
            got = c.req("i __serving_check")
            self.assertEqual(got, b"0 Lock Not Locked: __serving_check\n")
        finally:
            c.close()

    def wait_pidfile(self, d):
        """Wait until d's pidfile holds d's pid; returns the file's text."""
        deadline = time.monotonic() + TIMEOUT
        text = None
        while True:
            try:
                with open(d.pidfile) as f:
                    text = f.read()
                if text.strip() == str(d.proc.pid):
                    return text
            except FileNotFoundError:
                text = None
            if time.monotonic() > deadline:
                self.fail("pidfile %s never held pid %d (content %r)"
                          % (d.pidfile, d.proc.pid, text))
            time.sleep(0.01)

    def wait_log(self, d, text):
        deadline = time.monotonic() + TIMEOUT
        while text not in d.stderr():
            if not d.running() and text not in d.stderr():  # nothing more will come
                self.fail("log never contained %r; exited with %r; stderr:\n%s"
                          % (text, d.proc.returncode, tail(d.stderr())))
            if time.monotonic() > deadline:
                self.fail("log never contained %r; stderr:\n%s" % (text, tail(d.stderr())))
            time.sleep(0.02)

    def run_bad(self, argv_list, timeout=TIMEOUT):
        """Run several command lines that must fail at once; returns a list of
        (rc, stdout, stderr). Any still running after the timeout is killed
        and reported as rc None."""
        procs = []
        for i, argv in enumerate(argv_list):
            errp = os.path.join(self.tmp, "bad.%d.stderr" % i)
            outp = os.path.join(self.tmp, "bad.%d.stdout" % i)
            with open(errp, "wb") as err, open(outp, "wb") as out:
                p = subprocess.Popen([BIN] + argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err, start_new_session=True)
            procs.append((p, outp, errp))
        results = []
        deadline = time.monotonic() + timeout
        for p, outp, errp in procs:
            try:
                rc = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                rc = None
            with open(outp, "rb") as f:
                out = f.read().decode("utf-8", "replace")
            with open(errp, "rb") as f:
                err = f.read().decode("utf-8", "replace")
            check_sanitizer_output(err, "glockd %r" % (argv,))
            results.append((rc, out, err))
        return results


# Expected answer lines (Part 1, byte for byte).

def g_ok(n): return b"1 Lock Get Success: " + b(n) + b"\n"
def g_fail(n): return b"0 Lock Get Failure: " + b(n) + b"\n"
def r_ok(n): return b"1 Lock Release Success: " + b(n) + b"\n"
def r_fail(n): return b"0 Lock Release Failure: " + b(n) + b"\n"
def i_yes(n): return b"1 Lock Is Locked: " + b(n) + b"\n"
def i_no(n): return b"0 Lock Not Locked: " + b(n) + b"\n"
def sg_ok(k, n): return b"%d Shared Lock Get Success: " % k + b(n) + b"\n"
def sr_ok(n): return b"1 Shared Lock Release Success: " + b(n) + b"\n"
def sr_fail(n): return b"0 Shared Lock Release Failure: " + b(n) + b"\n"
def si_yes(k, n): return b"%d Shared Lock Is Locked: " % k + b(n) + b"\n"
def si_no(n): return b"0 Shared Lock Not Locked: " + b(n) + b"\n"

DISABLED = b"0 disabled\n"
OK = b"1 ok\n"

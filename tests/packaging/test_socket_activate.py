#!/usr/bin/python3
"""Socket activation without booting anything: systemd-socket-activate opens
the listening sockets, waits for the first connection and then execs the
built glockd (GLOCKD_BIN) with them, as systemd does for glockd.socket.

Covers: fds named unix/tcp/ws (as the packaged units name them), two fds
with the same name, unnamed fds (told apart by address family), READY=1 +
STATUS= and STOPPING=1 on NOTIFY_SOCKET, that SIGTERM and a crash (SIGSEGV)
leave the unix socket file of the manager alone, and that a fd that is not a
listening stream socket is refused with a message.

Skips (77) without systemd-socket-activate (apt-get install systemd), except
on CI (env CI set).
"""
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ports  # noqa: E402  (tests/ports.py)
from pkgtest import check, failures, log  # noqa: E402

GLOCKD = os.environ.get("GLOCKD_BIN")
SSA = shutil.which("systemd-socket-activate")


def have_ipv6():
    return ports.have_ipv6()


class Client:
    def __init__(self, family, addr, timeout=10):
        self.sock = socket.socket(family)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b""

    def ask(self, request, n=1):
        self.sock.sendall(request.encode() + b"\n")
        while self.buf.count(b"\n") < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                return f"(closed after {self.buf!r})"
            self.buf += chunk
        lines = []
        for _ in range(n):
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.decode())
        return lines[0] if n == 1 else lines

    def stats(self):
        return dict(line.split(": ", 1) for line in self.ask("q", 19))

    def close(self):
        self.sock.close()


class Activated:
    """systemd-socket-activate holding `listens` (each -l ADDR), glockd
    exec'd on the first connection; notifications read from our socket."""

    def __init__(self, tmp, listens, names=None, extra=()):
        self.notify_path = os.path.join(tmp, f"notify.{len(os.listdir(tmp))}")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(5)
        cmd = [SSA]
        for addr in listens:
            cmd += ["-l", addr]
        if names:
            cmd.append("--fdname=" + ":".join(names))
        cmd += ["-E", f"NOTIFY_SOCKET={self.notify_path}", GLOCKD, "--port=0", "--ws=0",
                *extra]
        self.log = open(os.path.join(tmp, "daemon.log"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_listening(self, path):
        """The unix socket file appears once every -l socket is open."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if os.path.exists(path):
                return True
            time.sleep(0.02)
        return False

    def notifications(self, want, timeout=5):
        got = ""
        deadline = time.monotonic() + timeout
        while want not in got and time.monotonic() < deadline:
            try:
                got += self.notify.recv(4096).decode() + "\n"
            except socket.timeout:
                break
        return got

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return "killed after 10 s"

    def close(self):
        self.stop()
        self.notify.close()
        self.log.close()


def named_fds(tmp):
    log("-- named fds: unix, tcp (127.0.0.1 and ::1), ws, as the packaged units name them")
    unix_path = os.path.join(tmp, "glockd.sock")
    tcp, ws = ports.free_port(), ports.free_port()
    listens, names = [unix_path, f"127.0.0.1:{tcp}"], ["unix", "tcp"]
    v6 = have_ipv6()
    if v6:
        listens.append(f"[::1]:{tcp}")
        names.append("tcp")
    listens.append(f"127.0.0.1:{ws}")
    names.append("ws")
    a = Activated(tmp, listens, names)
    try:
        check(a.wait_listening(unix_path), "systemd-socket-activate listens",
              a.output())
        check(a.proc.poll() is None, "glockd is not started before the first connection")
        u = Client(socket.AF_UNIX, unix_path)
        check(u.ask("g sa") == "1 Lock Get Success: sa", "first connection (unix) is served")
        ready = a.notifications("READY=1")
        check("READY=1" in ready and "STATUS=serving" in ready,
              "READY=1 and STATUS= reach NOTIFY_SOCKET", repr(ready))
        t = Client(socket.AF_INET, ("127.0.0.1", tcp))
        check(t.ask("g sa") == "0 Lock Get Failure: sa", "TCP fd is served (lock held by unix)")
        check(t.ask("me").startswith("1 127.0.0.1:"), "TCP peer is named IP:PORT")
        check(u.ask("me").startswith("1 unix:"), "unix peer is named unix:N")
        if v6:
            t6 = Client(socket.AF_INET6, ("::1", tcp))
            check(t6.ask("i sa") == "1 Lock Is Locked: sa", "second fd named tcp ([::1]) served")
            t6.close()
        w = Client(socket.AF_INET, ("127.0.0.1", ws))
        w.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            head = w.sock.recv(200).decode("latin-1")
        except OSError as e:
            head = f"({e})"
        w.close()
        check(head.startswith("HTTP/1.1 "), f"ws fd speaks HTTP ({head.splitlines()[:1]})")
        u.close()
        deadline = time.monotonic() + 5
        s = t.stats()
        while s["orphans"] != "1" and time.monotonic() < deadline:
            time.sleep(0.05)
            s = t.stats()
        check(s["orphans"] == "1" and s["locks"] == "0",
              f"disconnect orphans the lock (locks {s['locks']}, orphans {s['orphans']})")
        t.close()
        out = a.output()
        n = len(listens)
        check(f"socket activation: {n} sockets from systemd" in out,
              f"glockd adopted the {n} sockets", out)
        for name in ("unix", "tcp", "ws"):
            # "listening on systemd fd N named NAME (TRANSPORT)"
            check(f"named {name} ({name})" in out, f"the fd named {name} is a {name} listener", out)
        rc = a.stop()
        check(rc == 0, f"SIGTERM: glockd exits 0 (got {rc})", a.output())
        stopping = a.notifications("STOPPING=1")
        check("STOPPING=1" in stopping, "STOPPING=1 reaches NOTIFY_SOCKET", repr(stopping))
        check(os.path.exists(unix_path),
              "glockd leaves the unix socket file it was handed alone (the manager owns it)")
    finally:
        a.close()


def crash_leaves_managers_socket(tmp):
    log("-- a crash (SIGSEGV) does not remove the unix socket file systemd owns")
    unix_path = os.path.join(tmp, "crash.sock")
    a = Activated(tmp, [unix_path], ["unix"])
    try:
        check(a.wait_listening(unix_path), "systemd-socket-activate listens", a.output())
        u = Client(socket.AF_UNIX, unix_path)
        check(u.ask("g crash") == "1 Lock Get Success: crash", "first connection (unix) is served")
        # glockd was exec'd in place of systemd-socket-activate: same pid.
        resource.prlimit(a.proc.pid, resource.RLIMIT_CORE, (0, 0))
        a.proc.send_signal(signal.SIGSEGV)
        rc = a.proc.wait(timeout=10)
        u.close()
        check(rc == -signal.SIGSEGV, f"glockd dies by SIGSEGV (got {rc})", a.output())
        check(os.path.exists(unix_path),
              "glockd leaves the unix socket file it was handed alone on a crash")
    finally:
        a.close()


def unnamed_fds(tmp):
    log("-- unnamed fds: told apart by address family")
    unix_path = os.path.join(tmp, "unnamed.sock")
    tcp = ports.free_port()
    a = Activated(tmp, [f"127.0.0.1:{tcp}", unix_path])
    try:
        check(a.wait_listening(unix_path), "systemd-socket-activate listens", a.output())
        t = Client(socket.AF_INET, ("127.0.0.1", tcp))
        check(t.ask("g un") == "1 Lock Get Success: un", "unnamed AF_INET fd serves the line "
              "protocol (tcp)")
        u = Client(socket.AF_UNIX, unix_path)
        check(u.ask("me").startswith("1 unix:"), "unnamed AF_UNIX fd is a unix listener")
        u.close()
        t.close()
        rc = a.stop()
        check(rc == 0, f"glockd exits 0 (got {rc})", a.output())
    finally:
        a.close()


def not_a_stream(tmp):
    log("-- a datagram fd is refused with a message")
    port = ports.free_port()
    log_file = open(os.path.join(tmp, "dgram.log"), "w+")
    proc = subprocess.Popen([SSA, "-d", "-l", f"127.0.0.1:{port}", "--fdname=tcp", GLOCKD],
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        rc = None
        while time.monotonic() < deadline and rc is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"g x\n", ("127.0.0.1", port))
            try:
                rc = proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        log_file.seek(0)
        out = log_file.read()
        check(rc == 1 and "not a listening stream socket" in out,
              f"glockd exits 1 naming the problem (rc {rc})", out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def main():
    reasons = []
    if not GLOCKD or not os.access(GLOCKD, os.X_OK):
        reasons.append(f"GLOCKD_BIN ({GLOCKD}) is not an executable (run through meson test)")
    if not SSA:
        reasons.append("systemd-socket-activate is missing (apt-get install systemd)")
    pkgtest.skip_or_fail(reasons, "CI is set" if pkgtest.on_ci() else None)
    with tempfile.TemporaryDirectory(prefix="glockd-sa.") as tmp:
        for case in (named_fds, crash_leaves_managers_socket, unnamed_fds, not_a_stream):
            try:
                case(tmp)
            except (OSError, ValueError, KeyError) as e:
                check(False, f"{case.__name__} raised {e!r}")
    if failures:
        print(f"{len(failures)} checks failed: {failures}")
        sys.exit(1)


if __name__ == "__main__":
    main()

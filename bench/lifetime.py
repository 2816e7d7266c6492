#!/usr/bin/python3
"""Figures for the lock-lifetime guarantees (README "When a lock is
released"): how long a SIGTERM takes with clients that never read, how soon
paused peers that hang up lose their locks, whether SIGKILL-and-restart-at-once
comes up serving, and whether fencing tokens go back across a restart with
and without --state-dir. Prints numbers; judges nothing but crashes.

  bench/lifetime.py GLOCKD [--quick]

Talks only to 127.0.0.1 and a unix socket in a temp dir; every loop is bounded.
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GLOCKD = sys.argv[1] if len(sys.argv) > 1 else "build/glockd"
QUICK = "--quick" in sys.argv
TIMEOUT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(target):
    fam = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(target)
    return s


def ask(s, line):
    s.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed while asking %r" % line)
        buf += chunk
    return buf.decode()


def start(args, target):
    """Starts glockd and waits until a request on `target` is answered."""
    p = subprocess.Popen([GLOCKD] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        if p.poll() is not None:
            return p, None
        try:
            with connect(target) as s:
                if ask(s, "i __ready").startswith("0 Lock Not Locked"):
                    return p, time.monotonic() - t0
        except OSError:
            time.sleep(0.002)
    p.kill()
    raise RuntimeError("glockd did not come up")


def stop(p, sig=signal.SIGTERM):
    t0 = time.monotonic()
    p.send_signal(sig)
    p.wait(TIMEOUT)
    return time.monotonic() - t0


def shutdown_with_non_readers(n, stats_requests):
    port = free_port()
    p, _ = start(["--port", str(port), "--bind", "127.0.0.1", "--ws", "0"], ("127.0.0.1", port))
    hogs = []
    for k in range(n):
        s = connect(("127.0.0.1", port))
        # ~450 bytes of answer per q, never read: the sends stay stuck.
        s.sendall(b"g hog%d\n" % k + b"q\n" * stats_requests)
        hogs.append(s)
    with connect(("127.0.0.1", port)) as probe:
        ask(probe, "i settle")
    secs = stop(p)
    for s in hogs:
        s.close()
    print("shutdown: %d clients with unread answers: SIGTERM to exit %.0f ms (exit %d)"
          % (n, secs * 1000, p.returncode))


def ghosts_released(n):
    port = free_port()
    p, _ = start(["--port", str(port), "--bind", "127.0.0.1", "--ws", "0"], ("127.0.0.1", port))
    holder = connect(("127.0.0.1", port))
    ask(holder, "g L")
    ghosts = []
    for k in range(n):
        g = connect(("127.0.0.1", port))
        ask(g, "g K%d" % k)
        # Queued behind the wait: 2 MB, the reproduction (glockd
        # closes a connection at 1 MiB queued, or sees the FIN before).
        g.setblocking(False)
        data, sent = b"w 600000 L\n" + b"i x\n" * 500000, 0
        try:
            while sent < len(data):
                sent += g.send(data[sent:sent + 65536])
        except (BlockingIOError, ConnectionError):
            pass
        ghosts.append(g)
    probe = connect(("127.0.0.1", port))
    time.sleep(0.5)  # let the daemon read what it will (a figure, not a test)
    t0 = time.monotonic()
    for g in ghosts:
        g.close()
    while time.monotonic() - t0 < TIMEOUT:
        probe.sendall(b"q\n")
        text = b""
        while text.count(b"\n") < 19:
            text += probe.recv(65536)
        stats = dict(line.split(": ") for line in text.decode().splitlines())
        if int(stats["locks"]) == 1:
            break
    ms = (time.monotonic() - t0) * 1000
    print("ghosts: %d peers with 2 MB queued behind a wait closed: all their locks free "
          "after %.1f ms" % (n, ms))
    holder.close()
    probe.close()
    stop(p)


def restart_cycles(n, tmp):
    port = free_port()
    path = os.path.join(tmp, "g.sock")
    for name, args, target in (
            ("tcp", ["--port", str(port), "--bind", "127.0.0.1", "--ws", "0"],
             ("127.0.0.1", port)),
            ("unix", ["--port", "0", "--ws", "0", "--unix", path], path)):
        ok, times = 0, []
        p, _ = start(args, target)
        for _ in range(n):
            p.kill()
            p.wait()
            p, secs = start(args, target)
            if secs is not None:
                ok += 1
                times.append(secs * 1000)
            else:
                p = start(args, target)[0]  # one refusal; go on from a running daemon
        stop(p)
        print("restart: SIGKILL then start at once over %s: %d of %d came up serving, "
              "median %.1f ms to the first answer" % (name, ok, n, statistics.median(times or [0])))


def tokens_across_restart(pairs, tmp):
    for state in (None, os.path.join(tmp, "state")):
        port = free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--ws", "0"]
        if state:
            os.makedirs(state, exist_ok=True)
            args += ["--state-dir", state]
        p, _ = start(args, ("127.0.0.1", port))
        s = connect(("127.0.0.1", port))
        batch = b"g a\nr a\n" * 50000
        t0 = time.monotonic()
        for _ in range(pairs // 50000):
            s.sendall(batch)
            want, got = 100000, 0
            while got < want:
                got += s.recv(1 << 20).count(b"\n")
        rate = pairs / (time.monotonic() - t0)
        ask(s, "g a")
        last = int(ask(s, "t a").split()[0])
        s.close()
        stop(p)
        p, _ = start(args, ("127.0.0.1", port))
        s = connect(("127.0.0.1", port))
        ask(s, "g a")
        first = int(ask(s, "t a").split()[0])
        s.close()
        stop(p)
        print("tokens: %d g/r pairs at %.0f/s, restart %s: next token %s the last by %d"
              % (pairs, rate, "with --state-dir" if state else "without --state-dir",
                 "ABOVE" if first > last else "BELOW", abs(first - last)))


def main():
    with tempfile.TemporaryDirectory(prefix="glockd-lifetime-") as tmp:
        shutdown_with_non_readers(*((5, 5000) if QUICK else (200, 20000)))
        ghosts_released(5 if QUICK else 200)
        restart_cycles(3 if QUICK else 20, tmp)
        tokens_across_restart(100000 if QUICK else 5000000, tmp)


if __name__ == "__main__":
    main()

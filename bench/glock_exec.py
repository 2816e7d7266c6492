#!/usr/bin/python3
"""What `glock exec L -- true` costs a shell script, next to flock(1) and a
bare fork/exec of `true`: wall time per run (median and p99) over a unix
socket and TCP, with and without registering a name (one round trip less).

  bench/glock_exec.py [--glockd build-rel/glockd] [--glock build-rel/glock] [--runs 300]

Starts its own daemon on a temp unix socket and a free loopback port."""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import ports  # noqa: E402


def ready(path, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                s.sendall(b"i ready\n")
                if s.recv(100):
                    return True
        except OSError:
            time.sleep(0.01)
    return False


def timed(argv, runs):
    took = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glockd", default="build-rel/glockd")
    ap.add_argument("--glock", default="build-rel/glock")
    ap.add_argument("--runs", type=int, default=300)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="glock-bench.")
    sock, port = os.path.join(tmp, "sock"), ports.free_port()
    d = subprocess.Popen([a.glockd, "--port", str(port), "--bind", "127.0.0.1", "--ws", "0",
                          "--unix", sock], stderr=subprocess.DEVNULL)
    try:
        if not ready(sock, time.monotonic() + 10):
            sys.exit("glockd did not start")
        cases = [
            ("fork/exec of true (floor)", ["true"]),
            ("flock FILE true", ["flock", os.path.join(tmp, "f"), "true"]),
            ("glock exec, unix", [a.glock, "--server", sock, "exec", "L", "--", "true"]),
            ("glock exec, unix, --name ''",
             [a.glock, "--server", sock, "exec", "--name", "", "L", "--", "true"]),
            ("glock exec, TCP", [a.glock, "--server", "127.0.0.1:%d" % port, "exec", "L", "--",
                                 "true"]),
            ("glock exec --token-env, unix",
             [a.glock, "--server", sock, "exec", "--token-env", "T", "L", "--", "true"]),
        ]
        print("%-32s %10s %10s" % ("runs of %d" % a.runs, "median ms", "p99 ms"))
        for name, argv in cases:
            med, p99 = timed(argv, a.runs)
            print("%-32s %10.2f %10.2f" % (name, med, p99))
    finally:
        d.terminate()
        d.wait(timeout=10)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()

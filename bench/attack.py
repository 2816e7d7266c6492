#!/usr/bin/python3
"""Replays the attacks of issue 10 against a real glockd and prints, per
attack, what it cost the daemon (bench/README.md "Attacks (issue 10)"):

  peak     VmHWM minus the baseline VmRSS (MiB), read at the end (so it
           covers the attack and the 5 s after it); `sampled` is the highest
           VmRSS seen every 20 ms
  after    VmRSS over the baseline 5 s (--settle) after the attackers closed
  probe    p50/p99/max of a separate well-behaved client's `i probe` round
           trips (one every 5 ms, own connection, own process so that the
           attackers' Python cannot delay it) during the attack window
  SIGTERM  a second fresh daemon, the same attack, SIGTERM at half the
           window while the attack goes on: the time until the process
           exited (capped at 70 s)

  The tls-handshake-burst attacks (issue 12) start the daemon with --ssl
  (EC P-256 or RSA-2048 certificates from tests/tlscerts.py) and --unix:
  the attackers loop connect, full handshake, one `i`, RST; the probe is a
  TLS client on the TCP port, or (-unix) a plain client on the unix socket.

  bench/attack.py [--glockd PATH] [--scale S] [--only NAME] [--extra-args "..."]
                  [--json FILE] [--smoke]

Each attack gets a fresh daemon on 127.0.0.1 (free ports, a temp dir) and
lasts --window seconds (10); every loop is bounded and everything is closed
and killed on the way out, also on errors. Standard library only.
"""
import argparse
import atexit
import datetime
import json
import multiprocessing
import os
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack_clients as ac  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGTERM_CAP = 70.0


def free_port():
    with socket.socket() as s:
        s.bind((ac.HOST, 0))
        return s.getsockname()[1]


def status_kib(pid):
    """{'VmRSS': kB, 'VmHWM': kB} from /proc/PID/status (empty if gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line[:5]] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


_PKI = {}


def pki(kind):
    """The throw-away certificates of tests/tlscerts.py, made once per run:
    "ec" (P-256) or "rsa" (2048 bits)."""
    if kind not in _PKI:
        sys.path.insert(0, os.path.join(REPO, "tests"))
        import tlscerts  # noqa: E402
        d = tempfile.mkdtemp(prefix="glockd-attack-pki-")
        atexit.register(shutil.rmtree, d, True)
        _PKI[kind] = tlscerts.make_pki(d, rsa_bits=2048 if kind == "rsa" else 0)
        _PKI[kind]["dir"] = d
    return _PKI[kind]


class Daemon:
    """glockd as our direct child, ready once it sent READY=1 (sd_notify).
    With tls ("ec" or "rsa") its TCP port speaks only TLS (--ssl, client
    certificates required) and it also listens on a unix socket in tmp."""

    def __init__(self, binary, extra, tmp, tls=None):
        self.tmp, self.proc, self.tls_kind = tmp, None, tls
        self.tls_client, self.unix_path, tls_args = None, None, []
        if tls:
            p = pki(tls)
            self.tls_client = ac.tls_client_context(p)
            self.unix_path = os.path.join(tmp, "glockd.sock")
            tls_args = ["--ssl", "--ssl-cert", p["server"], "--ssl-key", p["server_key"],
                        "--ssl-ca", p["ca"], "--unix", self.unix_path]
        for _ in range(5):  # a port taken between free_port() and bind: retry
            self.port, self.ws_port = free_port(), free_port()
            argv = [binary, "--port", str(self.port), "--ws", str(self.ws_port),
                    "--bind", ac.HOST] + tls_args + extra
            why = self._spawn(argv)
            if why is None:
                return
            if "in use" not in why:
                break
        raise RuntimeError("glockd did not start: %s\nargv: %s" % (why, " ".join(argv)))

    def _spawn(self, argv):
        notify_path = os.path.join(self.tmp, "notify")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        self.log = os.path.join(self.tmp, "glockd.log")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, \
                open(self.log, "wb") as log:
            notify.bind(notify_path)
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=dict(os.environ, NOTIFY_SOCKET=notify_path),
                                         start_new_session=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if select.select([notify], [], [], 0.05)[0] and b"READY=1" in notify.recv(4096):
                    return None
                if self.proc.poll() is not None:
                    return "exited %d: %s" % (self.proc.returncode, self.log_text()[-500:])
            self.kill()
            return "no READY=1 within 10 s"

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self, timeout=10.0):
        """A client of the TCP port (over TLS when the daemon has --ssl)."""
        if self.tls_client:
            return ac.tls_connect(self.port, self.tls_client, timeout)
        return ac.connect(self.port, timeout)

    def connect_unix(self, timeout=10.0):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.unix_path)
        return s

    def alive(self):
        """Running and answering a fresh client within 5 s."""
        if self.proc.poll() is not None:
            return False
        try:
            with self.connect(timeout=5) as s:
                s.sendall(b"i alive\n")
                return ac.read_lines(s, 1, timeout=5).startswith(b"0 Lock Not Locked: alive")
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Ctx:
    """What an attack builder needs to know about the daemon and the run."""

    def __init__(self, daemon, window, q_lines, names_cache):
        self.port, self.ws_port, self.window = daemon.port, daemon.ws_port, window
        self.tls_client, self.tls_kind = daemon.tls_client, daemon.tls_kind
        self.q_lines, self.deadline, self._names = q_lines, time.monotonic() + window, names_cache

    def colliding(self, n):
        if len(self._names) < n:
            self._names[:] = ac.colliding_names(n)
        return self._names[:n]


def count_q_lines(d):
    with d.connect() as s:
        s.sendall(b"q\ni __end\n")
        text = b""
        while b"__end\n" not in text:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("daemon closed the connection during q")
            text += chunk
        return text.count(b"\n") - 1


def probe_main(sock, stop_at, interval, pipe):
    """In a child process: `i probe` round trips until stop_at; sends the
    latencies (ms) back. The request in flight at stop_at gets 1 s more;
    still unanswered, it counts with the time it waited, and `stalled` says
    so."""
    lat, stalled, error = [], False, None
    want = b"0 Lock Not Locked: probe\n"
    try:
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            sock.sendall(b"i probe\n")
            buf = b""
            while len(buf) < len(want):
                left = stop_at + 1.0 - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    stalled = True
                    break
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("probe connection closed by the daemon")
                buf += chunk
            lat.append((time.monotonic() - t0) * 1000)
            if stalled:
                break
            time.sleep(max(0.0, t0 + interval - time.monotonic()))
    except OSError as e:
        error = str(e)
    pipe.send({"lat": lat, "stalled": stalled, "error": error})
    pipe.close()


class Sampler(threading.Thread):
    """VmRSS every 20 ms; `over` once it passes cap_kib (the attack stops)."""

    def __init__(self, pid, cap_kib):
        super().__init__(daemon=True)
        self.pid, self.cap, self.max_rss, self.over = pid, cap_kib, 0, False
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(0.02):
            rss = status_kib(self.pid).get("VmRSS", 0)
            self.max_rss = max(self.max_rss, rss)
            self.over = self.over or rss > self.cap


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else None


def measure(name, build, opts, names, q_lines_box):
    """Phase 1: one fresh daemon, the attack for the window, then 5 s idle."""
    row = {"attack": name}
    with tempfile.TemporaryDirectory(prefix="glockd-attack-") as tmp:
        d = Daemon(opts.glockd, opts.extra, tmp, getattr(build, "tls_kind", None))
        attack = probe = sampler = None
        try:
            budget = [ln for ln in d.log_text().splitlines() if re.search("(?i)memory", ln)]
            row["daemon_log_memory"] = budget
            if not q_lines_box:
                q_lines_box.append(count_q_lines(d))
            base = status_kib(d.proc.pid)["VmRSS"]
            row["baseline_mib"] = base / 1024
            ctx = Ctx(d, opts.window, q_lines_box[0], names)
            psock = d.connect_unix() if getattr(build, "probe", None) == "unix" else d.connect()
            parent, child = multiprocessing.Pipe(duplex=False)
            probe = multiprocessing.get_context("fork").Process(
                target=probe_main, args=(psock, ctx.deadline, 0.005, child), daemon=True)
            probe.start()
            psock.close()
            child.close()
            sampler = Sampler(d.proc.pid, opts.rss_cap * 1024)
            sampler.start()
            attack = build(ctx, opts.scale)
            hard = ctx.deadline + attack.extra_time
            attack.loop.run(hard, tick=attack.tick, until=lambda: sampler.over or (
                time.monotonic() >= ctx.deadline and not attack.busy(time.monotonic())))
            row["alive_in_attack"] = d.proc.poll() is None
            row["rss_capped"] = sampler.over
            row["params"], row["notes"] = attack.params, attack.notes()
            row["closed_by_daemon"] = attack.closed_by_daemon()
            if hasattr(attack, "first_answer"):
                row["first_answer_ms"] = attack.first_answer["ms"]
            res = parent.recv() if parent.poll(max(1.0, ctx.deadline - time.monotonic() + 5)) \
                else {"lat": [], "stalled": True, "error": "no report from the probe"}
            lat = res["lat"]
            row.update(probe_n=len(lat), probe_stalled=res["stalled"], probe_error=res["error"],
                       probe_p50=pct(lat, 50), probe_p99=pct(lat, 99),
                       probe_max=max(lat) if lat else None)
            attack.close()
            attack = None
            time.sleep(opts.settle)
            # The peak covers the aftermath too: a daemon still working
            # through what the attackers left in its socket buffers grows on.
            st = status_kib(d.proc.pid)
            row["after_mib"] = (st.get("VmRSS", 0) - base) / 1024
            row["peak_mib"] = (st.get("VmHWM", 0) - base) / 1024
            row["sampled_mib"] = (sampler.max_rss - base) / 1024
            row["alive"] = d.alive()
        finally:
            if sampler:
                sampler.halt.set()
            if attack:
                attack.close()
            if probe:
                probe.join(2)
                if probe.is_alive():
                    probe.kill()
            d.stop()
            d.kill()
    return row


def sigterm(name, build, opts, names, q_lines):
    """Phase 2: a fresh daemon, the same attack, SIGTERM at half the window."""
    with tempfile.TemporaryDirectory(prefix="glockd-attack-") as tmp:
        d = Daemon(opts.glockd, opts.extra, tmp, getattr(build, "tls_kind", None))
        attack, pidfd = None, os.pidfd_open(d.proc.pid)
        try:
            ctx = Ctx(d, opts.window, q_lines, names)
            attack = build(ctx, opts.scale)
            attack.loop.run(ctx.deadline - opts.window / 2, tick=attack.tick)
            attack.loop.watch(pidfd, "exited")
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            attack.loop.run(t0 + opts.sigterm_cap, tick=attack.tick,
                            until=lambda: "exited" in attack.loop.fired)
            ms = (time.monotonic() - t0) * 1000
            if "exited" not in attack.loop.fired:
                return {"sigterm_ms": None, "sigterm_rc": None}
            return {"sigterm_ms": ms, "sigterm_rc": d.proc.wait()}
        finally:
            if attack:
                attack.close()
            os.close(pidfd)
            d.kill()


def fmt(v, spec="%.1f", none="-"):
    return none if v is None else spec % v


def print_table(rows, opts):
    head = "%-26s %8s %8s %8s %25s %6s %10s  %s" % (
        "attack", "peak", "sampled", "after", "probe p50/p99/max ms", "n", "SIGTERM ms",
        "notes")
    print(head)
    for r in rows:
        if "error" in r:
            print("%-26s ERROR %s" % (r["attack"], r["error"]))
            continue
        probe = "%s/%s/%s%s" % (fmt(r["probe_p50"]), fmt(r["probe_p99"]), fmt(r["probe_max"], "%.0f"),
                                "+" if r["probe_stalled"] else "")
        term = fmt(r["sigterm_ms"], "%.0f", ">%d" % (opts.sigterm_cap * 1000))
        notes = [r["notes"]] if r["notes"] else []
        if r["rss_capped"]:
            notes.append("stopped at --rss-cap")
        if r["closed_by_daemon"]:
            notes.append("daemon closed %d attacker conns" % r["closed_by_daemon"])
        if not r["alive"]:
            notes.append("NO ANSWER to a new client within 5 s, %g s after the close"
                         % opts.settle)
        print("%-26s %8.1f %8.1f %8.1f %25s %6d %10s  %s" % (
            r["attack"], r["peak_mib"], r["sampled_mib"], r["after_mib"], probe, r["probe_n"],
            term, "; ".join(notes)))
    print("(MiB over the baseline VmRSS; probe max with +: its last request was still "
          "unanswered 1 s after the window ended)")
    for r in rows:
        if "params" in r:
            print("  %-24s %s" % (r["attack"], r["params"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glockd", default=os.path.join(REPO, "build-rel", "glockd"))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", action="append", help="run this attack (repeatable)")
    ap.add_argument("--extra-args", default="", help="flags for the daemon, one string")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per attack")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds idle before 'after'")
    ap.add_argument("--sigterm-cap", type=float, default=SIGTERM_CAP)
    ap.add_argument("--rss-cap", type=float, default=8192,
                    help="stop an attack once the daemon's VmRSS passes this (MiB)")
    ap.add_argument("--smoke", action="store_true",
                    help="every attack tiny (~2 s each); exit 1 unless all ran and the "
                         "daemon survived")
    opts = ap.parse_args()
    if opts.smoke:
        opts.scale, opts.window, opts.settle, opts.sigterm_cap = 0.01, 1.0, 0.3, 20.0
    opts.extra = shlex.split(opts.extra_args)
    names = [n for n, _ in ac.ATTACKS]
    for n in opts.only or []:
        if n not in names:
            ap.error("no attack %r; there are: %s" % (n, ", ".join(names)))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip() or "?"
    print("glockd attacks: %s (checkout %s), scale %g, window %g s, settle %g s, %s, "
          "open files %d" % (opts.glockd, rev, opts.scale, opts.window, opts.settle,
                             datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), hard))
    if opts.extra:
        print("daemon flags: %s" % " ".join(opts.extra))
    rows, cache, q_lines, budget = [], [], [], []
    for name, build in ac.ATTACKS:
        if opts.only and name not in opts.only:
            continue
        if opts.smoke and getattr(build, "tls_kind", None) == "rsa":
            continue  # the same code as the EC ones; RSA keys take seconds to make
        t0 = time.monotonic()
        try:
            row = measure(name, build, opts, cache, q_lines)
            row.update(sigterm(name, build, opts, cache, q_lines[0]))
            mem = row.pop("daemon_log_memory")
            if mem and not budget:
                budget[:] = mem
                print("daemon's log on memory: %s" % " | ".join(mem))
        except Exception as e:  # one attack's failure is a row, not the end
            row = {"attack": name, "error": "%s: %s" % (type(e).__name__, e)}
        row["seconds"] = time.monotonic() - t0
        rows.append(row)
        print("  %s done in %.1f s" % (name, row["seconds"]), file=sys.stderr, flush=True)
    print_table(rows, opts)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"glockd": opts.glockd, "checkout": rev, "scale": opts.scale,
                       "window_s": opts.window, "settle_s": opts.settle,
                       "extra_args": opts.extra, "daemon_log_memory": budget, "date": datetime.datetime.now().isoformat(),
                       "attacks": rows}, f, indent=1)
    bad = [r["attack"] for r in rows if "error" in r or not r["alive"] or
           not r["alive_in_attack"] or r["sigterm_ms"] is None or r["probe_n"] == 0]
    if bad:
        print("errors, or the daemon died or did not answer afterwards: %s" % ", ".join(bad))
    return 1 if (opts.smoke and bad) else 0


if __name__ == "__main__":
    sys.exit(main())

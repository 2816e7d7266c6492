# The glock command against the real daemon: exec's mutual exclusion, waits,
# semaphores, exit codes, signals and lost locks; inspect, locks, who, stats;
# server addresses; TLS (tls://, --cert/--key/--ca) against glockd --ssl.
# Every test runs real glock processes ($GLOCK_BIN).

import ctypes
import http.client
import json
import os
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DaemonTestCase, Q_KEYS, TIMEOUT, check_sanitizer_output,  # noqa: E402
                     free_port, g_ok, i_no, i_yes, si_yes, tail)
import ports  # noqa: E402  (tests/ports.py, on the path harness set)
import tlscerts  # noqa: E402  (tests/tlscerts.py, likewise)

GLOCK = os.environ.get("GLOCK_BIN", "/work/main/build/glock")
LONG = 3 * TIMEOUT  # bound for a glock process to end; only there to never hang
PR_SET_CHILD_SUBREAPER = 36

# CMD scripts (sh -c SCRIPT sh ARGS...). `ready` is written once the traps
# are set, so a test knows when signals can be sent. The background sleep
# with `wait` lets a trap run at once.
TRAPS = r'''log=$1; ready=$2
for s in TERM INT HUP; do
  trap "echo got $s >> '$log'; kill \$p 2>/dev/null; exit $3" $s
done
sleep 60 & p=$!
echo $$ > "$ready"
wait $p
echo "no signal" >> "$log"'''
IGNORES_TERM = 'trap "" TERM; echo $$ > "$1"; exec sleep 60'
READS_STDIN = 'echo $$ > "$1"; read x; echo "stdin closed" >> "$2"'


def close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def our_children():
    me, kids = str(os.getpid()), []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % entry) as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    kids.append(int(entry))
        except (OSError, IndexError):
            pass
    return kids


def slurp(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def status(rc, err):
    return "exit %r; stderr:\n%s" % (rc, err)


class Gate:
    """A pipe whose read end becomes CMD's stdin: CMD blocks in `read` until
    the test opens the gate (closes the write end)."""

    def __init__(self, tc):
        self.r, self.w = os.pipe()
        tc.addCleanup(lambda: [close_quietly(fd) for fd in (self.r, self.w) if fd is not None])

    def open(self):
        close_quietly(self.w)
        self.w = None  # the number may be reused: never close it twice


class Glock:
    """One glock process in a session of its own, its output in files."""

    def __init__(self, tc, argv, stdin, env):
        self.argv = argv
        self.out_path, self.err_path = (tc.path("glock.%d.%s" % (len(tc.procs), x))
                                        for x in ("out", "err"))
        fd = stdin.r if isinstance(stdin, Gate) else stdin
        assert fd is not None, "a Gate serves one glock"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen([GLOCK] + argv, stdin=fd, stdout=out, stderr=err,
                                      env=env, start_new_session=True)
        if isinstance(stdin, Gate):
            close_quietly(stdin.r)  # CMD has it now
            stdin.r = None

    def out(self):
        return slurp(self.out_path)

    def err(self):
        return slurp(self.err_path)

    def wait(self, timeout=LONG):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("glock %r still running after %.0f s; stderr:\n%s"
                                 % (self.argv, timeout, tail(self.err())))
        check_sanitizer_output(self.err(), "glock %r" % (self.argv,))
        return rc


class GlockTestCase(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.access(GLOCK, os.X_OK):
            raise RuntimeError("glock binary not found: %s (set GLOCK_BIN)" % GLOCK)
        # Orphans (a CMD whose glock was killed, a CMD's own children) become
        # this process's children, so tearDown can end them by pid safely.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def setUp(self):
        super().setUp()
        self.procs, self.daemons, self.server = [], [], None

    def tearDown(self):
        # Before the daemons stop: every glock, then what they left. Each is
        # an unreaped child of ours, so its pid cannot be anyone else's.
        for g in self.procs:
            if g.p.poll() is None:
                g.p.kill()
                g.p.wait(TIMEOUT)
        keep = {d.proc.pid for d in self.daemons}
        for _ in range(100):
            left = [pid for pid in our_children() if pid not in keep]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass

    def start(self, **kw):
        kw.setdefault("unix", True)
        self.d = self.daemon(**kw)
        self.daemons.append(self.d)
        self.server = ("unix:" + self.d.unix_path if self.d.unix_path
                       else "127.0.0.1:%d" % self.d.port)
        self.raw = self.client(self.d)
        return self.d

    def glock(self, *args, server=True, stdin=subprocess.DEVNULL, env=None):
        if env is None:  # the test's own environment must not pick the server
            env = {k: v for k, v in os.environ.items() if k != "GLOCKD_SERVER"}
        g = Glock(self, (["--server", self.server] if server else []) + list(args), stdin, env)
        self.procs.append(g)
        return g

    def run_glock(self, *args, **kw):
        g = self.glock(*args, **kw)
        return g.wait(), g.out(), g.err()

    def json_of(self, *args):
        rc, out, err = self.run_glock(*args)
        self.assertEqual(rc, 0, "%r: %s" % (args, status(rc, err)))
        return json.loads(out)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def read(self, name):
        return slurp(self.path(name))

    def until(self, predicate, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail("never happened: " + what)
            time.sleep(0.01)

    def wait_pid_file(self, name):
        """The pid a CMD wrote to `name` (whole line) once it is ready."""
        self.until(lambda: self.read(name).endswith("\n"), "CMD wrote " + name)
        return int(self.read(name))

    def wait_held(self, lock):
        self.wait_answer(self.raw, "i " + lock, i_yes(lock))

    def silent_server(self):
        """A TCP port that accepts and reads everything, and never answers."""
        return self.scripted_server(lambda lines, send, stop: None)

    def scripted_server(self, answer):
        """A TCP port whose every connection gets answer(request_lines, send)
        called once per batch it reads; answer sends what it likes."""
        listener = socket.create_server(("127.0.0.1", 0))
        stop = threading.Event()

        def serve():
            socks = [listener]
            while not stop.is_set():
                for s in select.select(socks, [], [], 0.05)[0]:
                    if s is listener:
                        socks.append(listener.accept()[0])
                        continue
                    data = s.recv(65536)
                    if not data:
                        socks.remove(s)
                        s.close()
                        continue
                    try:
                        answer(data.split(b"\n"), s.sendall, stop)
                    except OSError:
                        socks.remove(s)
                        s.close()
            for s in socks:
                s.close()
        t = threading.Thread(target=serve)
        t.start()
        self.addCleanup(t.join, TIMEOUT)
        self.addCleanup(stop.set)
        return "127.0.0.1:%d" % listener.getsockname()[1]


class Exclusion(GlockTestCase):

    def test_fifty_pairs_never_interleave(self):
        self.start()
        log = self.path("log")
        body = 'echo "start $1" >> "$2"; i=0; while [ $i -lt 50 ]; do i=$((i+1)); done; ' \
               'echo "end $1" >> "$2"'
        ids = 100
        for batch in range(0, ids, 20):  # 10 pairs (20 processes) at once, 5 times
            procs = [self.glock("exec", "--wait", "10000", "L", "--", "sh", "-c", body, "sh",
                                str(batch + k + 1), log) for k in range(20)]
            for g in procs:
                rc = g.wait()
                self.assertEqual(rc, 0, status(rc, g.err()))
        lines = self.read("log").splitlines()
        for k in range(0, len(lines), 2):  # "start N", then "end N" for the same N
            self.assertEqual(lines[k + 1:k + 2], [lines[k].replace("start", "end")],
                             "interleaved at line %d: %r" % (k, lines[k:k + 4]))
        self.assertEqual(sorted(lines[::2]), sorted("start %d" % i for i in range(1, ids + 1)))
        self.assertEqual(self.raw.req("i L"), i_no("L"))

    def test_wait_succeeds_once_the_holder_exits(self):
        ws_port = []

        def argv(d):  # the websocket port serves /metrics (glockd_waiters)
            ws_port[:] = [free_port()]
            a = d.default_argv()
            a[a.index("--ws") + 1] = str(ws_port[0])
            return a
        self.start(argv=argv)
        gate = Gate(self)
        holder = self.glock("exec", "--name", "holder", "L", "--", "sh", "-c", READS_STDIN, "sh",
                            self.path("holder.pid"), self.path("log"), stdin=gate)
        self.wait_held("L")
        waiter = self.glock("exec", "--wait", "10000", "L", "--", "sh", "-c",
                            'echo waited >> "$1"', "sh", self.path("log"))

        def waiters():
            conn = http.client.HTTPConnection("127.0.0.1", ws_port[0], timeout=TIMEOUT)
            try:
                conn.request("GET", "/metrics")
                body = conn.getresponse().read().decode()
            finally:
                conn.close()
            return [ln for ln in body.splitlines() if ln.startswith("glockd_waiters ")]
        self.until(lambda: waiters() == ["glockd_waiters 1"], "the waiter queued")
        self.assertIsNone(waiter.p.poll())
        self.assertEqual(self.read("log"), "")
        gate.open()
        self.assertEqual(holder.wait(), 0, holder.err())
        rc = waiter.wait()
        self.assertEqual(rc, 0, status(rc, waiter.err()))
        self.assertEqual(self.read("log"), "stdin closed\nwaited\n")
        self.assertEqual(self.raw.req("i L"), i_no("L"))


class Refusals(GlockTestCase):

    def test_busy_gives_75_or_the_conflict_exit_code(self):
        self.start()
        self.assertEqual(self.raw.req("g L"), g_ok("L"))
        for extra, want in (((), 75), (("--wait", "200"), 75), (("--conflict-exit-code", "3"), 3),
                            (("-E", "3", "-w", "100"), 3)):
            rc, out, err = self.run_glock("exec", *extra, "L", "--", "touch", self.path("ran"))
            self.assertEqual(rc, want, status(rc, err))
            self.assertEqual(err, "glock: L is held by another client\n")
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_semaphore_full_gives_75(self):
        self.start()
        others = [self.client(self.d) for _ in range(3)]
        for k, c in enumerate(others):
            self.assertEqual(c.req("sw 3 0 S"), ("%d Shared Lock Get Success: S\n" % (k + 1)).encode())
        rc, out, err = self.run_glock("exec", "--limit", "3", "--wait", "100", "S", "--", "true")
        self.assertEqual(rc, 75, status(rc, err))
        self.assertIn("S is held by 3 other clients (--limit 3)", err)

    def test_wait_refused_at_max_waiters_gives_75_at_once(self):
        # A w/sw the daemon will not queue comes back failed at once; a long
        # or endless --wait must not take that for a passed wait and ask
        # again in a tight loop.
        self.start(args=("--max-waiters-per-lock", "0"))
        self.assertEqual(self.raw.req("g L"), g_ok("L"))
        self.assertEqual(self.raw.req("sw 1 0 S"), b"1 Shared Lock Get Success: S\n")
        for args in (("--wait", "forever", "L"), ("--wait", "99999999999", "L"),
                     ("--limit", "1", "--wait", "forever", "S")):
            started = time.monotonic()
            rc, out, err = self.run_glock("exec", *args, "--", "touch", self.path("ran"))
            self.assertEqual(rc, 75, "%r: %s" % (args, status(rc, err)))
            self.assertLess(time.monotonic() - started, TIMEOUT)
            self.assertIn("refused to queue", err)
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_no_daemon_gives_69_naming_the_address(self):
        self.server = "unix:" + self.path("nothing.sock")
        rc, out, err = self.run_glock("exec", "L", "--", "true")
        self.assertEqual(rc, 69, status(rc, err))
        self.assertIn("cannot connect to glockd at unix:%s" % self.path("nothing.sock"), err)
        port = free_port()
        self.server = "127.0.0.1:%d" % port
        for sub in (("exec", "L", "--", "true"), ("locks",), ("stats",)):
            rc, out, err = self.run_glock(*sub)
            self.assertEqual(rc, 69, status(rc, err))
            self.assertIn("cannot connect to glockd at 127.0.0.1:%d" % port, err)

    def test_usage_errors_give_64(self):
        self.start()
        for args in (("exec", "--shared", "--token-env", "TOK", "L", "--", "true"),
                     ("exec", "--limit", "2", "--token-env", "TOK", "L", "--", "true"),
                     ("exec", "--token-env", "1X", "L", "--", "true"),
                     ("exec", "--wait", "soon", "L", "--", "true"),
                     ("exec", "L"),
                     ("exec", "L", "true", "--", "true"),
                     ("locks", "--", "true"),
                     ("exec", "--limit", "0", "L", "--", "true"),
                     # names the daemon would trim or collapse: another lock
                     ("exec", " L", "--", "true"),
                     ("exec", "a  b", "--", "true"),
                     ("exec", "a\tb", "--", "true"),
                     ("exec", "--name", "me ", "L", "--", "true"),
                     ("inspect", "L "),
                     ("who", "  ")):
            rc, out, err = self.run_glock(*args)
            self.assertEqual(rc, 64, "%r: %s" % (args, status(rc, err)))
            self.assertTrue(err.startswith("glock: "), err)
        self.assertEqual(self.raw.q()["command_g"], 0)


class ExitStatus(GlockTestCase):

    def test_cmd_status_passes_through(self):
        self.start()
        for script, want in (("exit 0", 0), ("exit 3", 3), ("exit 42", 42),
                             ("kill -TERM $$", 143), ("kill -9 $$", 137)):
            rc, out, err = self.run_glock("exec", "L", "--", "sh", "-c", script)
            self.assertEqual(rc, want, "%s: %s" % (script, status(rc, err)))
            self.assertEqual(err, "")
        self.assertEqual(self.raw.req("i L"), i_no("L"))
        q = self.raw.q()
        self.assertEqual((q["locks"], q["orphans"]), (0, 0))  # released, not dropped

    def test_cmd_not_found_127_not_executable_126(self):
        self.start()
        script = self.path("script")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(script, 0o644)
        for cmd, want, text in (("no-such-command-here", 127, "No such file or directory"),
                                (self.path("missing"), 127, "No such file or directory"),
                                (script, 126, "Permission denied"),
                                (self.tmp, 126, "Permission denied")):
            rc, out, err = self.run_glock("exec", "L", "--", cmd, "arg")
            self.assertEqual(rc, want, "%s: %s" % (cmd, status(rc, err)))
            self.assertEqual(err, "glock: %s: %s\n" % (cmd, text))
        self.assertEqual(self.raw.req("i L"), i_no("L"))


class Semaphore(GlockTestCase):

    def test_limit_three(self):
        self.start()
        runs = self.path("runs")
        os.mkdir(runs)
        # Each runner marks itself in `runs` while it holds a slot and
        # records how many markers it saw: never more than the holders.
        body = 'mkdir "$1/$$"; ls "$1" | wc -l >> "$2"; sleep 0.4; rmdir "$1/$$"'
        procs = [self.glock("exec", "--limit", "3", "--wait", "20000", "S", "--",
                            "sh", "-c", body, "sh", runs, self.path("counts")) for _ in range(10)]
        for g in procs:
            rc = g.wait()
            self.assertEqual(rc, 0, status(rc, g.err()))
        counts = [int(x) for x in self.read("counts").split()]
        self.assertEqual(len(counts), 10)
        self.assertLessEqual(max(counts), 3, counts)
        self.assertGreaterEqual(max(counts), 2, counts)
        self.assertEqual(self.raw.req("si S"), b"0 Shared Lock Not Locked: S\n")


class LostLock(GlockTestCase):

    def kill_daemon(self):
        self.d.proc.kill()
        self.d.proc.wait(TIMEOUT)

    def test_daemon_killed_cmd_gets_term_and_glock_exits_74(self):
        for k, unix in enumerate((True, False)):
            self.start(unix=unix)
            log, ready = self.path("log%d" % k), self.path("ready%d" % k)
            g = self.glock("exec", "L", "--", "sh", "-c", TRAPS, "sh", log, ready, "0")
            self.wait_pid_file("ready%d" % k)
            self.kill_daemon()
            rc = g.wait()
            self.assertEqual(rc, 74, status(rc, g.err()))
            self.assertIn("glock: lost the lock L: glockd at %s closed the connection; stopping "
                          "CMD (SIGTERM, SIGKILL after 10 s)\n" % self.server, g.err())
            self.assertEqual(self.read("log%d" % k), "got TERM\n")

    def test_daemon_killed_while_glock_waits(self):
        self.start()
        self.assertEqual(self.raw.req("g L"), g_ok("L"))
        g = self.glock("exec", "--name", "waiter", "--wait", "20000", "L", "--",
                       "touch", self.path("ran"))
        self.until(lambda: self.raw.multi("who waiter") != [], "the waiter registered")
        self.kill_daemon()
        rc = g.wait()
        self.assertEqual(rc, 69, status(rc, g.err()))
        # A daemon killed before it read the `w` resets the connection
        # (unread data) instead of closing it: both are the daemon gone.
        self.assertRegex(g.err(), "closed the connection|Connection reset by peer")
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_keep_running(self):
        self.start()
        gate = Gate(self)
        g = self.glock("exec", "--keep-running", "L", "--", "sh", "-c",
                       "trap 'echo got TERM >> \"$2\"; exit 0' TERM; " + READS_STDIN, "sh",
                       self.path("pid"), self.path("log"), stdin=gate)
        pid = self.wait_pid_file("pid")
        self.kill_daemon()
        self.until(lambda: "lost the lock" in g.err(), "glock reported the loss")
        self.assertIn("--keep-running: CMD goes on without it", g.err())
        self.assertIsNone(g.p.poll())
        os.kill(pid, 0)  # CMD still runs
        gate.open()
        rc = g.wait()
        self.assertEqual(rc, 74, status(rc, g.err()))
        self.assertEqual(self.read("log"), "stdin closed\n")  # never signalled

    def test_kill_after_when_cmd_ignores_term(self):
        self.start()
        g = self.glock("exec", "--kill-after", "1", "L", "--", "sh", "-c", IGNORES_TERM, "sh",
                       self.path("pid"))
        pid = self.wait_pid_file("pid")
        self.kill_daemon()
        rc = g.wait()
        self.assertEqual(rc, 74, status(rc, g.err()))
        self.assertIn("lost the lock L", g.err())
        self.assertIn("(SIGTERM, SIGKILL after 1 s)\n", g.err())
        self.assertIn("did not end after SIGTERM; sending SIGKILL", g.err())
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)  # glock reaped it

    def test_glock_killed_cmd_gets_term_and_the_lock_is_free(self):
        self.start()
        g = self.glock("exec", "L", "--", "sh", "-c", TRAPS, "sh", self.path("log"),
                       self.path("ready"), "0")
        self.wait_pid_file("ready")
        self.wait_held("L")
        os.kill(g.p.pid, signal.SIGKILL)
        self.assertEqual(g.wait(), -signal.SIGKILL)
        self.until(lambda: self.read("log") == "got TERM\n", "CMD got SIGTERM (PR_SET_PDEATHSIG)")
        self.wait_answer(self.raw, "i L", i_no("L"))

    def test_glock_killed_lock_free_though_cmd_lives(self):
        # CMD does not inherit the connection: the lock goes with glock.
        self.start()
        g = self.glock("exec", "L", "--", "sh", "-c", IGNORES_TERM, "sh", self.path("pid"))
        pid = self.wait_pid_file("pid")
        self.wait_held("L")
        os.kill(g.p.pid, signal.SIGKILL)
        g.wait()
        self.wait_answer(self.raw, "i L", i_no("L"))
        os.kill(pid, 0)  # still there (killed in tearDown with the group)


class Signals(GlockTestCase):

    def test_signals_reach_cmd_and_its_status_is_glocks(self):
        self.start()
        for k, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
            log, ready = self.path("log%d" % k), self.path("ready%d" % k)
            g = self.glock("exec", "L", "--", "sh", "-c", TRAPS, "sh", log, ready, str(20 + k))
            self.wait_pid_file("ready%d" % k)
            os.kill(g.p.pid, sig)
            rc = g.wait()
            self.assertEqual(rc, 20 + k, status(rc, g.err()))
            self.assertEqual(self.read("log%d" % k), "got %s\n" % sig.name[3:])
            self.assertEqual(self.raw.req("i L"), i_no("L"))

    def test_untrapped_term_kills_cmd(self):
        self.start()
        g = self.glock("exec", "L", "--", "sh", "-c", 'echo $$ > "$1"; exec sleep 60', "sh",
                       self.path("pid"))
        self.wait_pid_file("pid")
        os.kill(g.p.pid, signal.SIGTERM)
        rc = g.wait()
        self.assertEqual(rc, 143, status(rc, g.err()))


    def test_sigchld_ignored_by_the_caller(self):
        # SIG_IGN for SIGCHLD is inherited across exec and makes the kernel
        # reap children itself: glock must still see CMD end (and release),
        # and CMD must still get the disposition glock was given.
        self.start()
        env = {k: v for k, v in os.environ.items() if k != "GLOCKD_SERVER"}
        p = subprocess.Popen([GLOCK, "--server", self.server, "exec", "L", "--", "grep",
                              "^SigIgn:", "/proc/self/status"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
        try:
            out, err = p.communicate(timeout=LONG)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("glock never noticed that CMD ended")
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(self.raw.req("i L"), i_no("L"))
        self.assertTrue(int(out.split()[1], 16) & (1 << (signal.SIGCHLD - 1)), out)


class Tokens(GlockTestCase):

    def test_tokens_strictly_increase(self):
        self.start()
        tokens = []
        for _ in range(5):
            rc, out, err = self.run_glock("exec", "--token-env", "TOK", "L", "--",
                                          "sh", "-c", 'echo "$TOK"')
            self.assertEqual(rc, 0, status(rc, err))
            tokens.append(int(out))
        self.assertGreater(tokens[0], 0)
        self.assertEqual(tokens, sorted(set(tokens)), tokens)


class Inspection(GlockTestCase):

    def test_locks_inspect_who_stats(self):
        self.start()
        raw = self.raw  # registered with a name holding ": "
        self.assertEqual(raw.req("iam client: raw"), b"1 ok\n")
        self.assertEqual(raw.req("g plain"), g_ok("plain"))
        self.assertEqual(raw.req("sg shared1"), b"1 Shared Lock Get Success: shared1\n")
        anon = self.client(self.d)  # not registered
        self.assertEqual(anon.req("g weird: name"), g_ok("weird: name"))
        gates = [Gate(self), Gate(self)]
        self.glock("exec", "--name", "builder: nightly", "db: main", "--", "sh", "-c", "read x",
                   stdin=gates[0])
        self.glock("exec", "--name", "worker", "--shared", "shared1", "--", "sh", "-c", "read x",
                   stdin=gates[1])
        self.wait_held("db: main")
        self.wait_answer(raw, "si shared1", si_yes(2, "shared1"))

        who = self.json_of("who", "--json")
        addr = {w["name"]: w["address"] for w in who}
        self.assertEqual(sorted(addr), ["builder: nightly", "client: raw", "worker"])
        self.assertEqual(addr["client: raw"], raw.addr())
        self.assertTrue(addr["worker"].startswith("unix:"), addr)
        self.assertEqual(self.json_of("who", "client: raw", "--json"),
                         [{"address": raw.addr(), "name": "client: raw"}])

        got = self.json_of("locks", "--json")
        self.assertEqual((got["server"], got["registry"]), (self.server, True))

        def row(lock, kind, holder, a):
            return {"lock": lock, "type": kind, "holder": holder, "addresses": [a]}
        self.assertEqual(got["locks"], [
            row("db: main", "exclusive", "builder: nightly", addr["builder: nightly"]),
            row("plain", "exclusive", "client: raw", raw.addr()),
            row("shared1", "shared", "client: raw", raw.addr()),
            row("shared1", "shared", "worker", addr["worker"]),
            row("weird: name", "exclusive", anon.addr(), anon.addr())])

        rc, out, err = self.run_glock("locks")
        self.assertEqual(rc, 0, err)
        table = [ln.split("  ") for ln in out.splitlines()]
        table = [[c.strip() for c in r if c.strip()] for r in table]
        self.assertEqual(table[0], ["LOCK", "TYPE", "HOLDER", "ADDRESS"])
        self.assertIn(["db: main", "exclusive", "builder: nightly", addr["builder: nightly"]], table)
        self.assertIn(["weird: name", "exclusive", "-", anon.addr()], table)
        self.assertEqual(len(table), 6)

        self.assertEqual(self.json_of("inspect", "db: main", "--json"), {
            "name": "db: main", "shared": {"holders": 0, "names": []},
            "exclusive": {"locked": True, "holder": "builder: nightly",
                          "addresses": [addr["builder: nightly"]]}})
        self.assertEqual(self.json_of("inspect", "shared1", "--json"), {
            "name": "shared1", "shared": {"holders": 2, "names": ["client: raw", "worker"]},
            "exclusive": {"locked": False, "holder": None, "addresses": []}})
        rc, out, err = self.run_glock("inspect", "weird: name")
        self.assertEqual((rc, out), (0, "exclusive lock weird: name: held by %s\n"
                                        "shared lock weird: name: free\n" % anon.addr()), err)
        rc, out, err = self.run_glock("inspect", "plain")
        self.assertIn("held by client: raw (%s)" % raw.addr(), out)

        stats = self.json_of("stats", "--json")
        self.assertEqual(sorted(stats), Q_KEYS)
        self.assertEqual((stats["locks"], stats["shared_locks"]), (3, 1))
        rc, out, err = self.run_glock("stats")
        self.assertEqual(out.splitlines()[0].split(), ["COUNTER", "VALUE"])
        self.assertIn(["locks", "3"], [ln.split() for ln in out.splitlines()])
        for g in gates:
            g.open()
        self.wait_answer(raw, "i db: main", i_no("db: main"))
        self.wait_answer(raw, "si shared1", si_yes(1, "shared1"))

    def test_odd_bytes_give_valid_json_and_an_inert_table(self):
        # Names are bytes: what is not valid UTF-8 (overlong forms,
        # surrogates, past U+10FFFF, stray bytes) must not reach the JSON raw,
        # and no control character (C0, DEL, C1 such as U+009B, the 8-bit
        # CSI) may reach the terminal raw.
        self.start()
        names = [b"a\xc0\x80b", b"c\xed\xa0\x80d", b"e\xf5\x80\x80\x80f",
                 b"g\xf0\x80\x80\x80h", b"i\xf4\x90\x80\x80j", b"k\x9bl",
                 b"c1\xc2\x9b31mX", b"esc\x1b[31mY", b"ok\xc3\xa9\xf0\x9f\x94\x92"]
        for n in names:
            self.assertEqual(self.raw.req(b"g " + n), b"1 Lock Get Success: " + n + b"\n")
        g = self.glock("locks", "--json")
        self.assertEqual(g.wait(), 0, g.err())
        with open(g.out_path, "rb") as f:
            got = json.loads(f.read().decode("utf-8"))  # strict: no surrogates either
        locks = sorted(x["lock"] for x in got["locks"])
        def decoded(n):
            try:
                return n.decode("utf-8")
            except UnicodeDecodeError:
                return n.decode("latin-1")  # each of these is invalid in all its bytes
        self.assertEqual(locks, sorted(decoded(n) for n in names))
        for args in (("locks",), ("inspect", "c1\u0080")):
            g = self.glock(*args)
            self.assertEqual(g.wait(), 0, g.err())
            with open(g.out_path, "rb") as f:
                text = f.read().decode("utf-8")  # valid UTF-8 too
            for ch in text:
                self.assertFalse(ord(ch) < 0x20 and ch != "\n" or 0x7f <= ord(ch) < 0xa0,
                                 "%r in %r" % (ch, text))
        rc, out, err = self.run_glock("locks")
        self.assertIn("c1\\xc2\\x9b31mX", out)
        self.assertIn("ok\u00e9\U0001f512", out)

    def test_inspect_splits_at_the_name_asked_for(self):
        # The line "k: p: q" is lock "k: p" held by "q", or lock "k" held by
        # "p: q"; inspect knows which lock it asked for.
        self.start()
        for name in ("p: q", "p: s"):
            self.assertEqual(self.client(self.d).req("iam " + name), b"1 ok\n")
        s = self.client(self.d)
        self.assertEqual(s.req("iam s"), b"1 ok\n")
        self.assertEqual(s.req("sg k: p"), b"1 Shared Lock Get Success: k: p\n")
        gate = Gate(self)
        self.glock("exec", "--name", "q", "k: p", "--", "sh", "-c", "read x", stdin=gate)
        self.wait_held("k: p")
        q_addr = [w["address"] for w in self.json_of("who", "q", "--json")]
        self.assertEqual(self.json_of("inspect", "k: p", "--json"), {
            "name": "k: p", "exclusive": {"locked": True, "holder": "q", "addresses": q_addr},
            "shared": {"holders": 1, "names": ["s"]}})
        rc, out, err = self.run_glock("inspect", "k: p")
        self.assertEqual(out, "exclusive lock k: p: held by q (%s)\n"
                              "shared lock k: p: 1 holder: s\n" % q_addr[0], err)

    def test_dump_disabled(self):
        self.start(args=["--dump=false"])
        self.assertEqual(self.raw.req("g L"), g_ok("L"))
        for args, text in ((("locks",), "--dump=false"), (("locks", "--json"), "--dump=false"),
                           (("who",), "disabled")):
            rc, out, err = self.run_glock(*args)
            self.assertEqual(rc, 69, "%r: %s" % (args, status(rc, err)))
            self.assertEqual(out, "")
            self.assertIn(text, err)
        rc, out, err = self.run_glock("inspect", "L")
        self.assertEqual(rc, 0, err)
        self.assertIn("holders not shown: the daemon runs with --dump=false", out)
        self.assertEqual(self.json_of("stats", "--json")["locks"], 1)
        rc, out, err = self.run_glock("exec", "M", "--", "true")  # exec does not need it
        self.assertEqual(rc, 0, status(rc, err))

    def test_registry_disabled(self):
        self.start(args=["--registry=false"])
        rc, out, err = self.run_glock("exec", "--name", "x", "L", "--", "true")
        self.assertEqual(rc, 0, status(rc, err))
        self.assertEqual(err, "glock: warning: not registered as 'x': the registry is disabled "
                              "on glockd at %s (it runs with --registry=false)\n" % self.server)
        rc, out, err = self.run_glock("exec", "L", "--", "true")  # the default name: no warning
        self.assertEqual((rc, err), (0, ""))
        rc, out, err = self.run_glock("who")
        self.assertEqual(rc, 69, status(rc, err))
        self.assertIn("disabled", err)


def have_ipv6():
    return ports.have_ipv6()


class Servers(GlockTestCase):

    def test_address_forms(self):
        v6 = have_ipv6()
        d = self.start(ipv6=v6)
        self.assertEqual(self.raw.req("g L"), g_ok("L"))
        forms = ["unix:" + d.unix_path, d.unix_path, "127.0.0.1:%d" % d.port,
                 "tcp://127.0.0.1:%d" % d.port, "tcp://127.0.0.1:%d/" % d.port]
        if v6:
            forms.append("[::1]:%d" % d.port)
        for form in forms:
            self.server = form
            self.assertTrue(self.json_of("inspect", "L", "--json")["exclusive"]["locked"], form)
        env = dict(os.environ, GLOCKD_SERVER="127.0.0.1:%d" % d.port)
        rc, out, err = self.run_glock("inspect", "L", server=False, env=env)
        self.assertEqual((rc, out.splitlines()[0]), (0, "exclusive lock L: held by %s" % self.raw.addr()), err)
        # --server wins over the environment.
        env["GLOCKD_SERVER"] = "unix:" + self.path("nothing.sock")
        rc, out, err = self.run_glock("--server", d.unix_path, "inspect", "L", server=False, env=env)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.run_glock("inspect", "L", server=False, env=env)
        self.assertEqual(rc, 69, err)
        self.assertIn(self.path("nothing.sock"), err)

    def test_bad_forms_give_64(self):
        for form in ("bad://x", "tls://", "tls://127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:65536",
                     "127.0.0.1:", "127.0.0.1:x", "unix:", ":9999", "[::1", "[::1]9", "",
                     "unix:/" + "x" * 200):
            self.server = form
            rc, out, err = self.run_glock("exec", "L", "--", "true")
            self.assertEqual(rc, 64, "%r: %s" % (form, status(rc, err)))
            self.assertTrue(err.startswith("glock: "), err)
        env = dict(os.environ, GLOCKD_SERVER="bad://x")
        rc, out, err = self.run_glock("stats", server=False, env=env)
        self.assertEqual(rc, 64, status(rc, err))
        # Given but empty (after the subcommand too) is not "the default".
        rc, out, err = self.run_glock("stats", "--server", "", server=False)
        self.assertEqual(rc, 64, status(rc, err))
        self.assertIn("bad server address '': it is empty", err)

    def test_trickling_answer_ends_at_the_deadline(self):
        """A line every 0.1 s, never the end marker: the whole answer has the
        request's deadline, not each line."""
        def trickle(lines, send, stop):
            while not stop.wait(0.1):
                send(b"lock: holder\n")
        self.server = self.scripted_server(trickle)
        started = time.monotonic()
        rc, out, err = self.run_glock("--timeout", "1", "locks")
        self.assertEqual(rc, 76, status(rc, err))
        self.assertIn("within the deadline", err)
        self.assertLess(time.monotonic() - started, TIMEOUT)

    def test_hostile_answer_is_quoted_inert(self):
        """A server's answer is quoted with control bytes escaped; a Bad
        Request names the server and the request and gives 76."""
        def escape(lines, send, stop):
            for line in lines:
                if line.startswith(b"g "):
                    send(b"1 \x1b[31mred\x9b2J\n")
                elif line.startswith(b"iam"):
                    send(b"0 Bad Request: \x1b]0;title\x07\n")
        self.server = self.scripted_server(escape)
        rc, out, err = self.run_glock("exec", "--name", "", "L", "--", "touch", self.path("ran"))
        self.assertEqual(rc, 76, status(rc, err))
        self.assertIn("unexpected answer from glockd at %s to 'g L': '1 \\x1b[31mred\\x9b2J'"
                      % self.server, err)
        self.assertNotIn("\x1b", err)
        rc, out, err = self.run_glock("exec", "--name", "n", "L", "--", "touch", self.path("ran"))
        self.assertEqual(rc, 76, status(rc, err))
        self.assertIn("glockd at %s refused 'iam n': \\x1b]0;title\\x07" % self.server, err)
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_silent_server_gives_76(self):
        self.server = self.silent_server()
        for name in ((), ("--name", "")):  # stuck at iam, or at the w
            rc, out, err = self.run_glock("--timeout", "0.5", "exec", "--wait", "100", *name,
                                          "L", "--", "touch", self.path("ran"))
            self.assertEqual(rc, 76, status(rc, err))
            self.assertIn("no answer from glockd at %s to '" % self.server, err)
            self.assertIn("within the deadline", err)
        self.assertFalse(os.path.exists(self.path("ran")))
        rc, out, err = self.run_glock("--timeout", "0.5", "locks")
        self.assertEqual(rc, 76, status(rc, err))


class Tls(GlockTestCase):
    """glock over TLS against glockd --ssl, with the PKI of tests/tlscerts.py
    (made once for the class)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki_dir = tempfile.mkdtemp(prefix="glock-pki-")
        cls.pki = tlscerts.make_pki(cls.pki_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki_dir, ignore_errors=True)
        super().tearDownClass()

    def start_tls(self, *extra, ipv6=False):
        """glockd --ssl (and a unix socket for the raw client); self.server
        is its TLS port on 127.0.0.1."""
        p = self.pki
        self.d = self.daemon(unix=True, ipv6=ipv6, args=(
            "--ssl", "--ssl-cert", p["server"], "--ssl-key", p["server_key"],
            "--ssl-ca", p["ca"]) + extra)
        self.daemons.append(self.d)
        self.raw = self.client(self.d, "unix")
        self.server = self.tls_server()
        return self.d

    def tls_server(self, host="127.0.0.1"):
        return "tls://%s:%d" % (host, self.d.port)

    def files(self, client="client", ca="ca"):
        """--cert/--key (none when client is None) and --ca."""
        p = self.pki
        cert = ["--cert", p[client], "--key", p[client + "_key"]] if client else []
        return cert + ["--ca", p[ca]]

    def refused(self, *files):
        rc, out, err = self.run_glock(*files, "exec", "L", "--", "touch", self.path("ran"))
        self.assertEqual(rc, 69, status(rc, err))
        self.assertFalse(os.path.exists(self.path("ran")))
        self.assertEqual(self.raw.req("i L"), i_no("L"))
        return err

    def test_exec_locks_and_unlocks_by_ipv4_ipv6_and_name(self):
        v6 = have_ipv6()
        self.start_tls(ipv6=v6)
        for k, host in enumerate(["127.0.0.1", "localhost"] + (["[::1]"] if v6 else [])):
            self.server = self.tls_server(host)
            gate = Gate(self)
            g = self.glock(*self.files(), "exec", "L", "--", "sh", "-c", READS_STDIN, "sh",
                           self.path("pid%d" % k), self.path("log"), stdin=gate)
            self.wait_held("L")
            got = self.json_of(*self.files("client2"), "inspect", "L", "--json")
            self.assertTrue(got["exclusive"]["locked"], host)
            gate.open()
            rc = g.wait()
            self.assertEqual(rc, 0, status(rc, g.err()))
            self.assertEqual(self.raw.req("i L"), i_no("L"))

    def test_files_from_the_environment(self):
        self.start_tls()
        p = self.pki
        env = {k: v for k, v in os.environ.items() if k != "GLOCKD_SERVER"}
        env.update(GLOCKD_SERVER=self.server, GLOCK_CERT=p["client"],
                   GLOCK_KEY=p["client_key"], GLOCK_CA=p["ca"])
        rc, out, err = self.run_glock("exec", "L", "--", "true", server=False, env=env)
        self.assertEqual(rc, 0, status(rc, err))
        # A plain server ignores them (a profile's GLOCK_CERT must not break
        # the unix socket), and --cert wins over GLOCK_CERT, with its own key.
        env["GLOCKD_SERVER"] = "unix:" + self.d.unix_path
        rc, out, err = self.run_glock("exec", "L", "--", "true", server=False, env=env)
        self.assertEqual(rc, 0, status(rc, err))
        env.update(GLOCKD_SERVER=self.server, GLOCK_CERT=p["other_client"])
        rc, out, err = self.run_glock("--cert", p["client"], "exec", "L", "--", "true",
                                      server=False, env=env)
        self.assertEqual(rc, 64, status(rc, err))
        self.assertIn("client certificate %s: no PEM private key in it" % p["client"], err)

    def test_daemon_killed_or_stopped_while_cmd_runs_gives_74(self):
        for k, stop in enumerate(("kill", "term")):
            self.start_tls()
            log, ready = self.path("log%d" % k), self.path("ready%d" % k)
            g = self.glock(*self.files(), "exec", "L", "--", "sh", "-c", TRAPS, "sh", log, ready,
                           "0")
            self.wait_pid_file("ready%d" % k)
            if stop == "kill":
                self.d.proc.kill()
                self.d.proc.wait(TIMEOUT)
            else:
                self.d.stop()  # close_notify, then FIN
            rc = g.wait()
            self.assertEqual(rc, 74, status(rc, g.err()))
            self.assertIn("glock: lost the lock L: glockd at %s closed the connection; stopping "
                          "CMD (SIGTERM, SIGKILL after 10 s)\n" % self.server, g.err())
            self.assertEqual(self.read("log%d" % k), "got TERM\n")

    def python_tls_server(self, tls12=False):
        """A TLS port (Python's ssl; the PKI's server certificate, client
        certificates of ca required; TLS 1.2 only with tls12) that answers
        one glock exec's iam and g L, then, once the returned event is set,
        says close_notify and keeps the TCP connection open until glock
        closes it. Its tls:// address and the event."""
        p = self.pki
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(p["server"], p["server_key"])
        ctx.load_verify_locations(p["ca"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(TIMEOUT)
        self.addCleanup(listener.close)
        say_goodbye = threading.Event()

        def serve():
            try:
                conn = listener.accept()[0]
                s = ctx.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return  # a refused handshake: glock says why
            with s:
                s.settimeout(TIMEOUT)
                buf = b""
                while not buf.endswith(b"g L\n"):
                    data = s.recv(4096)
                    if not data:
                        return
                    buf += data
                    if data.startswith(b"iam "):
                        s.sendall(b"1 ok\n")
                s.sendall(g_ok("L"))
                say_goodbye.wait(LONG)
                s.settimeout(None)  # until glock closes: it must not wait for a FIN
                try:
                    s.unwrap()  # close_notify, then wait for glock's end
                except (OSError, ssl.SSLError):
                    pass
        t = threading.Thread(target=serve)
        t.start()
        self.addCleanup(t.join, LONG)
        self.addCleanup(say_goodbye.set)
        return "tls://127.0.0.1:%d" % listener.getsockname()[1], say_goodbye

    def test_close_notify_alone_ends_the_lock(self):
        """close_notify with the TCP connection kept open: glock must take
        it for the end itself (a FIN comes only after glock has reacted).
        Over TLS 1.3 and 1.2."""
        for k, tls12 in enumerate((False, True)):
            self.server, say_goodbye = self.python_tls_server(tls12)
            log, ready = self.path("log%d" % k), self.path("ready%d" % k)
            g = self.glock(*self.files(), "exec", "L", "--", "sh", "-c", TRAPS, "sh", log, ready,
                           "0")
            self.wait_pid_file("ready%d" % k)
            say_goodbye.set()
            rc = g.wait()
            self.assertEqual(rc, 74, status(rc, g.err()))
            self.assertIn("glock: lost the lock L: glockd at %s closed the connection; stopping "
                          "CMD" % self.server, g.err())
            self.assertEqual(self.read("log%d" % k), "got TERM\n")

    def test_tls12_server_refusing_in_the_handshake_gives_69(self):
        """Over TLS 1.2 a server refuses a client certificate during the
        handshake (over 1.3, after it: see the glockd tests below)."""
        for files, says in ((self.files(client=None), "we sent none"),
                            (self.files(client="other_client"),
                             "(the server refused our client certificate)")):
            self.server, _ = self.python_tls_server(tls12=True)
            rc, out, err = self.run_glock(*files, "exec", "L", "--", "touch", self.path("ran"))
            self.assertEqual(rc, 69, status(rc, err))
            self.assertIn("glock: TLS handshake with glockd at %s failed: " % self.server, err)
            self.assertIn(says, err)
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_server_not_signed_by_our_ca_gives_69(self):
        self.start_tls()
        err = self.refused(*self.files(ca="other_ca"))
        self.assertIn("glock: TLS handshake with glockd at %s failed: certificate verify failed: "
                      % self.server, err)

    def test_no_client_certificate_gives_69(self):
        self.start_tls()
        err = self.refused(*self.files(client=None))
        self.assertIn("glockd at %s" % self.server, err)
        self.assertIn("(the server wants a client certificate; we sent none)", err)

    def test_client_certificate_of_another_ca_gives_69(self):
        self.start_tls()
        err = self.refused(*self.files(client="other_client"))
        self.assertIn("glockd at %s" % self.server, err)
        self.assertIn("(the server refused our client certificate)", err)

    def test_subject_name_shows_in_locks_and_who(self):
        self.start_tls("--ssl-subject-name")
        gate = Gate(self)
        g = self.glock(*self.files(), "exec", "--name", "job", "L", "--", "sh", "-c", "read x; :",
                       stdin=gate)
        self.wait_held("L")
        got = self.json_of(*self.files("client2"), "locks", "--json")
        self.assertEqual([(r["lock"], r["holder"]) for r in got["locks"]], [("L", "client-one/job")])
        who = self.json_of(*self.files("client2"), "who", "--json")
        self.assertEqual(sorted(w["name"] for w in who), ["client-one/job", "client-two"])
        gate.open()
        rc = g.wait()
        self.assertEqual(rc, 0, status(rc, g.err()))

    def test_silent_tls_server_gives_76_within_the_timeout(self):
        self.server = "tls://" + self.silent_server()
        started = time.monotonic()
        rc, out, err = self.run_glock(*self.files(), "--timeout", "0.5", "exec", "L", "--",
                                      "touch", self.path("ran"))
        self.assertEqual(rc, 76, status(rc, err))
        self.assertIn("glockd at %s did not complete the TLS handshake within the connect "
                      "timeout (500 ms)" % self.server, err)
        self.assertLess(time.monotonic() - started, TIMEOUT)
        self.assertFalse(os.path.exists(self.path("ran")))

    def test_plain_client_on_the_tls_port_is_told(self):
        self.start_tls()
        self.server = "127.0.0.1:%d" % self.d.port
        rc, out, err = self.run_glock("stats")
        self.assertEqual(rc, 69, status(rc, err))
        self.assertIn("is it tls://127.0.0.1:%d?" % self.d.port, err)

    def test_bad_files_and_options_give_64(self):
        self.start_tls()
        p, missing = self.pki, self.path("missing.pem")
        cases = [
            (["--cert", missing, "--key", p["client_key"]],
             "client certificate %s: cannot read: No such file or directory" % missing),
            (["--cert", p["client"], "--key", p["client2_key"]],
             "client key %s: does not match the certificate in %s" % (p["client2_key"], p["client"])),
            (["--cert", p["client"], "--key", p["client_key"], "--ca", p["ca_key"]],
             "CA file %s: no PEM certificate in it" % p["ca_key"]),
            (["--cert", p["weak"], "--key", p["weak_key"]],
             "client certificate %s: refused by OpenSSL's security level" % p["weak"]),
            (["--cert", ""], "--cert needs a file name"),
        ]
        for args, says in cases:
            rc, out, err = self.run_glock(*args, "stats")
            self.assertEqual(rc, 64, "%r: %s" % (args, status(rc, err)))
            self.assertIn(says, err)
        self.server = "unix:" + self.d.unix_path
        for flag in ("--cert", "--key", "--ca"):
            rc, out, err = self.run_glock(flag, p["client"], "stats")
            self.assertEqual(rc, 64, status(rc, err))
            self.assertIn("--cert, --key and --ca are for a tls:// server, and unix:%s (--server) "
                          "is not one" % self.d.unix_path, err)
        self.assertEqual(self.raw.q()["command_q"], 1)  # only the raw client's own


if __name__ == "__main__":
    unittest.main()

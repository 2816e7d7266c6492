# Process lifecycle: unix socket handling, signals, pidfile, port in use,
# command line parsing (Go-style flags, bad values, --version, --help),
# listening sockets and --verbose logging.

import os
import re
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, TIMEOUT, Daemon, DaemonTestCase, DISABLED, OK, free_port,  # noqa: E402
                     check_sanitizer_output, g_fail, g_ok, i_no, i_yes, r_ok, sg_ok, si_yes,
                     sr_ok)


def listening_tcp(pid):
    """(ip, port) of every listening TCP socket the process has open."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    out = []
    for fname, v6 in (("tcp", False), ("tcp6", True)):
        try:
            with open("/proc/%d/net/%s" % (pid, fname)) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            local, st, inode = cols[1], cols[3], cols[9]
            if st != "0A" or inode not in inodes:
                continue
            hexip, hexport = local.split(":")
            port = int(hexport, 16)
            raw = bytes.fromhex(hexip)
            if v6:
                # /proc prints four host-order 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((ip, port))
    return sorted(out)


def make_stale_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()   # the file stays, nothing listens
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def dead_pid():
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid


class UnixSocket(DaemonTestCase):

    def test_works_with_default_mode_0666(self):
        d = self.daemon(unix=True)
        self.assertEqual(stat.S_IMODE(os.stat(d.unix_path).st_mode), 0o666)
        u = self.client(d, "unix")
        t = self.client(d)
        self.assertEqual(u.req("g ux"), g_ok("ux"))
        self.assertEqual(t.req("i ux"), i_yes("ux"))
        self.assertEqual(u.req("me"), b"1 unix:1 unix:1\n")

    def test_unix_mode_applied(self):
        for mode in ("0600", "0660", "0644"):
            with self.subTest(mode=mode):
                path = os.path.join(self.tmp, "m%s.sock" % mode)
                d = self.daemon(unix=True, unix_path=path, args=["--unix-mode", mode],
                                name="m" + mode)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), int(mode, 8))
                u = self.client(d, "unix")
                self.assertEqual(u.req("g m"), g_ok("m"))
                d.stop()
                self.assertFalse(os.path.exists(path))

    def test_unix_socket_never_seen_with_another_mode(self):
        # bind() creates the file with 0777 & ~umask; the asked mode must be
        # in place before the file appears under its name. A thread lstat()s
        # the path as fast as it can from before the start until READY=1.
        path = os.path.join(self.tmp, "watched.sock")
        seen = {}
        for k in range(40):
            d = Daemon(self.tmp, tcp=False, unix=True, unix_path=path, umask=0o022,
                       args=["--unix-mode", "0600"], name="w%d" % k)
            self.addCleanup(d.kill)
            done = threading.Event()

            def watch():
                while not done.is_set():
                    try:
                        mode = stat.S_IMODE(os.lstat(path).st_mode)
                    except FileNotFoundError:
                        continue
                    seen[mode] = seen.get(mode, 0) + 1

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                d.start()
            finally:
                done.set()
                watcher.join(TIMEOUT)
            self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
            d.stop()
            self.assertFalse(os.path.exists(path))
        self.assertEqual({oct(m): n for m, n in seen.items()}, {"0o600": seen.get(0o600)},
                         "modes seen at %s during 40 starts (mode: times seen)" % path)

    def test_unix_mode_despite_umask(self):
        d = self.daemon(unix=True, umask=0o077)
        self.assertEqual(stat.S_IMODE(os.stat(d.unix_path).st_mode), 0o666)
        self.serving(d, "unix")
        d2 = self.daemon(unix=True, umask=0o077, args=["--unix-mode", "0660"], name="m660")
        self.assertEqual(stat.S_IMODE(os.stat(d2.unix_path).st_mode), 0o660)
        self.serving(d2, "unix")

    def test_unix_only_no_tcp(self):
        d = self.daemon(tcp=False, unix=True)
        self.assertEqual(listening_tcp(d.proc.pid), [])
        u = self.client(d, "unix")
        self.assertEqual(u.req("g only"), g_ok("only"))
        u2 = self.client(d, "unix")
        self.assertEqual(u2.req("g only"), b"0 Lock Get Failure: only\n")

    def test_stale_socket_file_replaced(self):
        path = os.path.join(self.tmp, "stale.sock")
        make_stale_socket(path)
        d = self.daemon(unix=True, unix_path=path)
        u = self.client(d, "unix")
        self.assertEqual(u.req("me"), b"1 unix:1 unix:1\n")
        self.assertEqual(u.req("g st"), g_ok("st"))

    def test_stale_socket_file_replaced_unix_only(self):
        path = os.path.join(self.tmp, "stale.sock")
        make_stale_socket(path)
        d = self.daemon(tcp=False, unix=True, unix_path=path)
        u = self.client(d, "unix")
        self.assertEqual(u.req("g st"), g_ok("st"))

    def test_live_socket_refused(self):
        path = os.path.join(self.tmp, "live.sock")
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(live.close)
        live.bind(path)
        live.listen(8)
        d = Daemon(self.tmp, unix=True, unix_path=path, name="second")
        d.port = free_port()
        d.spawn()
        rc = d.wait_exit()
        err = d.stderr()
        self.assertNotEqual(rc, 0, "started although a live socket is at %s" % path)
        self.assertIn("glockd: --unix %s: another server is listening there; stop it or "
                      "choose another path" % path, err)
        self.assertNotIn("AddressSanitizer", err)

    def test_live_socket_left_alone(self):
        # The refused daemon must not unlink the live instance's socket.
        path = os.path.join(self.tmp, "live.sock")
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(live.close)
        live.bind(path)
        live.listen(8)
        d = Daemon(self.tmp, unix=True, unix_path=path, name="second")
        d.port = free_port()
        d.spawn()
        d.wait_exit()
        self.assertTrue(os.path.exists(path), "the live socket file was removed")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(TIMEOUT)
        self.addCleanup(c.close)
        c.connect(path)

    def test_live_glockd_refused(self):
        first = self.daemon(unix=True)
        second = Daemon(self.tmp, unix=True, unix_path=first.unix_path, name="second")
        second.port = free_port()
        second.spawn()
        rc = second.wait_exit()
        self.assertNotEqual(rc, 0, second.stderr())
        self.assertTrue(second.stderr().strip())
        u = self.client(first, "unix")
        self.assertEqual(u.req("g still-first"), g_ok("still-first"))

    def test_path_cannot_be_created(self):
        path = os.path.join(self.tmp, "no", "such", "dir", "x.sock")
        d = Daemon(self.tmp, unix=True, unix_path=path, name="bad")
        d.port = free_port()
        d.spawn()
        rc = d.wait_exit()
        self.assertNotEqual(rc, 0)
        self.assertTrue(d.stderr().strip(), "no message on stderr")

    def test_sigterm_removes_socket_and_pidfile(self):
        d = self.daemon(unix=True, pidfile=True)
        u = self.client(d, "unix")
        self.assertEqual(u.req("g x"), g_ok("x"))
        self.assertTrue(os.path.exists(d.unix_path))
        self.wait_pidfile(d)
        d.stop(signal.SIGTERM)
        self.assertFalse(os.path.exists(d.unix_path), "unix socket file left behind")
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")

    def test_sigint_removes_socket_and_pidfile(self):
        d = self.daemon(unix=True, pidfile=True)
        self.wait_pidfile(d)
        self.serving(d, "unix")
        d.stop(signal.SIGINT)
        self.assertFalse(os.path.exists(d.unix_path), "unix socket file left behind")
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")


class Signals(DaemonTestCase):

    def _with_clients(self, sig):
        d = self.daemon(unix=True, pidfile=True)
        self.wait_pidfile(d)
        t1, t2, u = self.client(d), self.client(d), self.client(d, "unix")
        self.assertEqual(t1.req("g held"), g_ok("held"))
        self.assertEqual(u.req("sg shared"), sg_ok(1, "shared"))
        self.assertEqual(t2.req("i held"), i_yes("held"))
        d.stop(sig)     # asserts exit code 0 and no sanitizer report
        for c in (t1, t2, u):
            self.assertEqual(c.expect_eof(), b"")
        self.assertFalse(os.path.exists(d.unix_path), "unix socket file left behind")
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")

    def test_sigterm_with_clients(self):
        self._with_clients(signal.SIGTERM)

    def test_sigint_with_clients(self):
        self._with_clients(signal.SIGINT)

    def test_sigquit_with_clients(self):
        # SIGQUIT stops it like SIGTERM (by default it would dump core).
        self._with_clients(signal.SIGQUIT)

    def test_sighup_keeps_serving_and_every_lock(self):
        d = self.daemon(unix=True, pidfile=True)
        self.wait_pidfile(d)
        t1, t2, u = self.client(d), self.client(d), self.client(d, "unix")
        self.assertEqual(t1.req("g held"), g_ok("held"))
        self.assertEqual(u.req("sg shared"), sg_ok(1, "shared"))
        d.proc.send_signal(signal.SIGHUP)
        self.wait_log(d, "received SIGHUP from pid %d: no TLS configured, nothing to reload; "
                      "still serving, every lock kept" % os.getpid())
        self.assertTrue(d.running())
        self.assertTrue(os.path.exists(d.unix_path), "unix socket file removed")
        self.assertEqual(self.wait_pidfile(d).strip(), str(d.proc.pid))
        # The same holders still hold, and a new client is served.
        self.assertEqual(t2.req("g held"), g_fail("held"))
        self.assertEqual(t2.req("si shared"), si_yes(1, "shared"))
        self.assertEqual(t1.req("r held"), r_ok("held"))
        self.assertEqual(u.req("sr shared"), sr_ok("shared"))
        self.serving(d, "unix")
        self.assertEqual(t2.req("g held"), g_ok("held"))
        d.stop(signal.SIGTERM)
        self.assertFalse(os.path.exists(d.unix_path), "unix socket file left behind")
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")

    def test_a_sighup_storm_is_logged_rate_limited(self):
        d = self.daemon()
        c = self.client(d)
        self.assertEqual(c.req("g held"), g_ok("held"))
        for _ in range(2000):
            d.proc.send_signal(signal.SIGHUP)
        self.assertEqual(c.req("i held"), i_yes("held"))
        self.wait_log(d, "received SIGHUP")
        d.stop()
        # One line per second at most: a storm of 2000 sent in well under
        # the test's time-out cannot reach a line per signal.
        self.assertLess(d.stderr().count("received SIGHUP"), 2000 // 10)

    # Each of these ends or stops a process by default; glockd ignores them.
    IGNORED = ["SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXFSZ", "SIGPIPE",
               "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGIO", "SIGPWR", "SIGSTKFLT", "SIGRTMIN",
               "SIGRTMAX", 32, 33]  # 32, 33: glibc's own, below its SIGRTMIN

    def test_ignored_signals_keep_serving_and_every_lock(self):
        for name in self.IGNORED:
            with self.subTest(signal=name):
                sig = name if isinstance(name, int) else getattr(signal, name)
                # session=False: in an orphaned process group (a session of
                # its own) the kernel would discard SIGTSTP/SIGTTIN/SIGTTOU
                # itself, and this test could not fail for them.
                d = self.daemon(session=False, name="sig%s" % name)
                holder, other = self.client(d), self.client(d)
                self.assertEqual(holder.req("g held"), g_ok("held"))
                d.proc.send_signal(sig)
                # An answer after the signal was sent: it did not end or
                # stop the process (either happens before it runs again).
                self.assertEqual(other.req("g held"), g_fail("held"))
                self.assertEqual(holder.req("i held"), i_yes("held"))
                self.assertTrue(d.running())
                d.stop()

    def test_sigterm_with_client_not_reading(self):
        d = self.daemon()
        hog, t = self.client(d), self.client(d)
        self.assertEqual(hog.req("g hog"), g_ok("hog"))
        hog.sock.setblocking(False)
        total = 0
        try:
            while total < (64 << 20):
                total += hog.sock.send(b"i hog\n" * 4096)
        except BlockingIOError:
            pass
        self.assertEqual(t.req("i hog"), i_yes("hog"))
        d.stop(signal.SIGTERM)   # must not wait for the hog to read
        self.assertEqual(t.expect_eof(), b"")

    def test_sigterm_idle(self):
        d = self.daemon()
        self.serving(d)
        d.stop(signal.SIGTERM)

    def test_signal_as_soon_as_it_accepts(self):
        # Once the daemon accepts connections (and has written its pidfile),
        # SIGTERM/SIGINT must already mean a graceful shutdown: exit 0 and
        # no socket file or pidfile left behind. Repeated to catch a window
        # between opening the listeners and installing signal handling.
        failures = []
        for k in range(20):
            sig = signal.SIGTERM if k % 2 == 0 else signal.SIGINT
            d = Daemon(self.tmp, unix=True, pidfile=True, name="fast%d" % k)
            self.addCleanup(d.kill)
            d.start()
            d.proc.send_signal(sig)
            rc = d.wait_exit()
            if rc != 0:
                failures.append("start %d: %s -> exit %d, socket file left: %s, pidfile left: %s"
                                % (k, signal.Signals(sig).name, rc,
                                   os.path.exists(d.unix_path), os.path.exists(d.pidfile)))
        self.assertEqual(failures, [], "\n".join(failures))


class Crash(DaemonTestCase):
    """A fatal signal still removes the unix socket file and the pidfile,
    and the process still dies by that signal."""

    FATAL = ["SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGXCPU"]

    def test_fatal_signal_removes_files_and_dies_by_it(self):
        for name in self.FATAL:
            sig = getattr(signal, name)
            with self.subTest(signal=name):
                d = self.daemon(unix=True, pidfile=True, name=name)
                self.wait_pidfile(d)
                c = self.client(d, "unix")
                self.assertEqual(c.req("g held"), g_ok("held"))
                # No core file in the test's directory (core_pattern "core").
                resource.prlimit(d.proc.pid, resource.RLIMIT_CORE, (0, 0))
                d.proc.send_signal(sig)
                rc = d.proc.wait(TIMEOUT)
                self.assertEqual(rc, -sig, "exit status %r, not killed by %s\nstderr:\n%s"
                                 % (rc, name, d.stderr()))
                self.assertFalse(os.path.exists(d.unix_path), "unix socket file left behind")
                self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")
                # A signal sent from outside is no memory error: a sanitizer
                # build must not report one either.
                check_sanitizer_output(d.stderr())

    def test_files_removed_when_io_uring_is_refused(self):
        # The listeners and the pidfile exist before the ring is set up.
        helper = os.environ.get("FAIL_SYSCALL_BIN")
        if not helper or not os.path.exists(helper):
            self.skipTest("FAIL_SYSCALL_BIN (the seccomp helper) is not built")
        path = os.path.join(self.tmp, "noring.sock")
        pidfile = os.path.join(self.tmp, "noring.pid")
        p = subprocess.run([helper, "io_uring_setup", "EPERM", BIN, "--port", "0", "--ws", "0",
                            "--unix", path, "--pidfile", pidfile],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("io_uring", p.stderr)
        self.assertFalse(os.path.exists(path), "unix socket file left behind")
        self.assertFalse(os.path.exists(pidfile), "pidfile left behind")


class Pidfile(DaemonTestCase):

    def test_contains_pid(self):
        d = self.daemon(pidfile=True)
        text = self.wait_pidfile(d)
        self.assertRegex(text, r"^\d+\n?$")
        self.serving(d)

    def test_second_instance_same_pidfile(self):
        first = self.daemon(pidfile=True)
        self.wait_pidfile(first)
        second = Daemon(self.tmp, pidfile=first.pidfile, name="second")
        second.port = free_port()
        second.spawn()
        rc = second.wait_exit()
        err = second.stderr()
        self.assertNotEqual(rc, 0, "second instance started on a held pidfile")
        self.assertTrue("pid" in err.lower() or first.pidfile in err,
                        "message does not mention the pidfile: %r" % err)
        # The first instance and its pidfile are untouched.
        with open(first.pidfile) as f:
            self.assertEqual(f.read().strip(), str(first.proc.pid))
        c = self.client(first)
        self.assertEqual(c.req("g p"), g_ok("p"))

    def test_stale_pidfile_taken_over(self):
        path = os.path.join(self.tmp, "stale.pid")
        with open(path, "w") as f:
            f.write("%d\n" % dead_pid())
        d = self.daemon(pidfile=path)
        self.wait_pidfile(d)
        self.serving(d)
        d.stop()
        self.assertFalse(os.path.exists(path))


class PortInUse(DaemonTestCase):

    def check_refused(self, port):
        d = Daemon(self.tmp, port=port, name="second")
        d.port = port
        d.spawn()
        rc = d.wait_exit()
        err = d.stderr()
        self.assertNotEqual(rc, 0, "second daemon started on port %d" % port)
        self.assertIn("glockd: port %d on 127.0.0.1 is already in use: stop the other "
                      "server or choose another port" % port, err)

    def test_second_daemon_same_port(self):
        first = self.daemon()
        self.check_refused(first.port)
        c = self.client(first)
        self.assertEqual(c.req("g ok"), g_ok("ok"))

    def test_port_held_by_other_listener(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        self.check_refused(s.getsockname()[1])


class RestartAfterKill(DaemonTestCase):
    """A daemon SIGKILLed and started again at once must come up: its ring's
    teardown keeps the old listener open for some milliseconds after the
    process is reaped, so the new one finds the port bound, or a unix
    socket that still accepts."""

    CYCLES = 20
    HOLDERS = 1  # clients holding locks when it is killed, as in real life

    def _cycles(self, make, kind):
        failures = []
        holders = []
        for k in range(self.CYCLES):
            d = make(k)
            self.addCleanup(d.kill)
            try:
                d.start()
            except AssertionError as e:
                failures.append("cycle %d: %s" % (k, str(e).splitlines()[0]))
                continue
            finally:
                # The previous daemon's clients go only now, so that nothing
                # delays the restart.
                for c in holders:
                    c.close()
            holders = [self.client(d, kind) for _ in range(self.HOLDERS)]
            for n, c in enumerate(holders):
                self.assertEqual(c.req("g cycle%d.%d" % (k, n)), g_ok("cycle%d.%d" % (k, n)))
            d.proc.kill()
            d.proc.wait(TIMEOUT)
        self.assertEqual(failures, [], "%d of %d restarts failed:\n%s"
                         % (len(failures), self.CYCLES, "\n".join(failures)))

    def test_tcp_same_port(self):
        port = free_port()
        self._cycles(lambda k: Daemon(self.tmp, port=port, name="tcp%d" % k), "tcp")

    def test_unix_same_path(self):
        path = os.path.join(self.tmp, "restart.sock")
        self._cycles(lambda k: Daemon(self.tmp, tcp=False, unix=True, unix_path=path,
                                      name="unix%d" % k), "unix")

    # The same race made deterministic: a listener that goes away while the
    # new daemon is retrying, once it has said it is.

    def test_tcp_port_freed_while_retrying(self):
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(other.close)
        other.bind(("127.0.0.1", 0))
        other.listen(4)
        port = other.getsockname()[1]
        d = Daemon(self.tmp, port=port)
        self.addCleanup(d.kill)
        d.port = port
        d.spawn()
        self.wait_log(d, "port %d on 127.0.0.1 in use; retrying for 1 s" % port)
        other.close()
        self.assertIsNone(d.wait_ready(), d.stderr())
        self.serving(d)
        d.stop()
        self.assertEqual(d.stderr().count("retrying"), 1, "logged more than once")

    def test_unix_listener_gone_while_retrying(self):
        path = os.path.join(self.tmp, "busy.sock")
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(other.close)
        other.bind(path)
        other.listen(128)
        d = Daemon(self.tmp, tcp=False, unix=True, unix_path=path)
        self.addCleanup(d.kill)
        d.spawn()
        self.wait_log(d, "--unix %s: a server still accepts there; retrying for 1 s" % path)
        other.close()   # the file stays: now a stale socket
        self.assertIsNone(d.wait_ready(), d.stderr())
        self.serving(d)
        d.stop()
        self.assertFalse(os.path.exists(path))


class Listeners(DaemonTestCase):

    def test_bind_and_ws_disabled(self):
        d = self.daemon()
        self.assertEqual(listening_tcp(d.proc.pid), [("127.0.0.1", d.port)])
        self.serving(d)

    def test_bind_repeatable(self):
        d = self.daemon(ipv6=True)
        self.assertEqual(listening_tcp(d.proc.pid), sorted([("127.0.0.1", d.port), ("::1", d.port)]))
        c = self.client(d, "tcp6")
        self.assertEqual(c.req("g six"), g_ok("six"))


class CommandLine(DaemonTestCase):

    def test_go_style_equals(self):
        d = self.daemon(argv=lambda d: ["-port=%d" % d.port, "-ws=0", "-bind=127.0.0.1",
                                        "-dump=false", "-verbose=true"])
        c = self.client(d)
        self.assertEqual(c.req("d"), DISABLED)
        self.assertEqual(c.req("dump"), DISABLED)
        self.wait_log(d, "%s connected" % c.addr())

    def test_go_style_separate_values(self):
        sock = os.path.join(self.tmp, "go.sock")
        pid = os.path.join(self.tmp, "go.pid")
        d = self.daemon(unix=True, unix_path=sock, pidfile=pid,
                        argv=lambda d: ["-port", str(d.port), "-ws", "0", "-bind", "127.0.0.1",
                                        "-registry=false", "-unix", sock, "-unix-mode", "0600",
                                        "-pidfile", pid, "-max-line", "100"])
        c = self.client(d)
        self.assertEqual(c.req("iam x"), DISABLED)
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
        self.wait_pidfile(d)
        c.assert_silent(b"g " + b"x" * 150 + b"\n")
        u = self.client(d, "unix")
        self.assertEqual(u.req("g go"), g_ok("go"))

    def test_double_dash_forms(self):
        d = self.daemon(argv=lambda d: ["--port=%d" % d.port, "--ws=0", "--bind=127.0.0.1",
                                        "--dump=false", "--registry=true", "--verbose=false",
                                        "--max-line=100"])
        c = self.client(d)
        self.assertEqual(c.req("sd"), DISABLED)
        self.assertEqual(c.req("iam me"), OK)
        c.assert_silent(b"g " + b"y" * 150 + b"\n")
        self.assertEqual(c.req("g " + "y" * 90), g_ok("y" * 90))

    def test_go_style_verbose_true(self):
        d = self.daemon(argv=lambda d: ["-port", str(d.port), "-ws", "0", "-bind", "127.0.0.1",
                                        "-verbose=true"])
        c = self.client(d)
        self.assertEqual(c.req("g v"), g_ok("v"))
        self.wait_log(d, "%s obtained lock for v" % c.addr())

    def test_other_limits_accepted(self):
        d = self.daemon(args=["--max-connections", "100", "--keepalive", "30",
                              "--dump=true", "--registry=true"])
        c = self.client(d)
        self.assertEqual(c.req("g lim"), g_ok("lim"))
        d2 = self.daemon(args=["--keepalive", "0"], name="ka0")
        c2 = self.client(d2)
        self.assertEqual(c2.req("i lim"), i_no("lim"))

    def test_bad_values(self):
        port = free_port()
        base = ["--ws", "0", "--bind", "127.0.0.1"]
        cases = [
            ("port", ["--port", "70000"] + base),
            ("port", ["--port", "abc"] + base),
            ("port", ["--port", "-1"] + base),
            ("port", ["-port=99999"] + base),
            ("max-line", ["--port", str(port), "--max-line", "0"] + base),
            ("max-line", ["--port", str(port), "--max-line", "abc"] + base),
            ("no-such-flag", ["--port", str(port), "--no-such-flag"] + base),
            ("bogus", ["--port", str(port), "-bogus=1"] + base),
            ("dump", ["--port", str(port), "--dump=maybe"] + base),
            ("999.1.1.1", ["--port", str(port), "--ws", "0", "--bind", "999.1.1.1"]),
            ("pid", ["--port", str(port), "--pidfile",
                     os.path.join(self.tmp, "no", "such", "dir", "x.pid")] + base),
            ("unix-mode", ["--port", str(port), "--unix", os.path.join(self.tmp, "b.sock"),
                           "--unix-mode", "0999"] + base),
        ]
        results = self.run_bad([argv for _, argv in cases])
        problems = []
        for (flag, argv), (rc, out, err) in zip(cases, results):
            if rc is None:
                problems.append("%r: still running (started despite a bad value)" % argv)
            elif rc == 0:
                problems.append("%r: exit code 0" % argv)
            elif not err.strip():
                problems.append("%r: exit %d with nothing on stderr" % (argv, rc))
            elif flag not in err.lower():
                problems.append("%r: message does not name %r: %r" % (argv, flag, err.strip()[:300]))
        self.assertEqual(problems, [], "\n".join(problems))

    def test_version(self):
        for flag in ("--version", "-version"):
            with self.subTest(flag=flag):
                (rc, out, err), = self.run_bad([[flag, "--port", "0", "--ws", "0"]])
                self.assertEqual(rc, 0, "%s: rc %r, stderr %r" % (flag, rc, err))
                self.assertRegex(out + err, r"\d+\.\d+")

    def test_help(self):
        (rc, out, err), = self.run_bad([["--help", "--port", "0", "--ws", "0"]])
        self.assertEqual(rc, 0, "rc %r, stderr %r" % (rc, err))
        self.assertIn("port", (out + err).lower())


class Verbose(DaemonTestCase):

    def test_per_connection_lines(self):
        d = self.daemon(unix=True, args=["--verbose=true"])
        mon = self.client(d)
        a = self.client(d)
        A = a.addr()
        self.assertEqual(a.req("g foo"), g_ok("foo"))
        self.assertEqual(a.req("r foo"), b"1 Lock Release Success: foo\n")
        self.assertEqual(a.req("g bar"), g_ok("bar"))
        self.assertEqual(a.req("sg baz"), sg_ok(1, "baz"))
        u = self.client(d, "unix")
        self.assertEqual(u.req("g ufoo"), g_ok("ufoo"))
        a.close()
        u.reset()
        self.settle(mon, orphans=2, shared_orphans=1)
        for text in ("%s connected" % A, "%s obtained lock for foo" % A,
                     "%s released lock for foo" % A, "%s orphaned lock bar" % A,
                     "%s orphaned shared lock baz" % A, "%s disconnected" % A,
                     "unix:1 connected", "unix:1 obtained lock for ufoo",
                     "unix:1 orphaned lock ufoo", "unix:1 disconnected"):
            self.wait_log(d, text)
        d.stop()

    def test_quiet_by_default(self):
        d = self.daemon()
        mon = self.client(d)
        a = self.client(d)
        A = a.addr()
        self.assertEqual(a.req("g foo"), g_ok("foo"))
        a.close()
        self.settle(mon, orphans=1)
        d.stop()
        err = d.stderr()
        for text in ("%s connected" % A, "obtained lock for foo", "orphaned lock foo",
                     "%s disconnected" % A):
            self.assertNotIn(text, err)


class UnixSocketOwnership(DaemonTestCase):
    """Two glockd on one --unix path: one serves, the other is refused, and
    nobody removes a socket file that is not its own (found by a hostile
    review: rename() let both start, and a stop removed the other's file)."""

    def test_simultaneous_starts_one_serves_the_other_is_refused(self):
        path = os.path.join(self.tmp, "race.sock")
        for k in range(5):  # each refusal takes the 1 s retry
            pair = [Daemon(self.tmp, tcp=False, unix_path=path, name="race%d%s" % (k, x))
                    for x in "ab"]
            for d in pair:
                self.addCleanup(d.kill)
                d.spawn()
            outcomes = [d.wait_ready() for d in pair]
            ready = [d for d, why in zip(pair, outcomes) if why is None]
            self.assertEqual(len(ready), 1, "round %d: %r" % (k, outcomes))
            refused = [why for why in outcomes if why is not None][0]
            self.assertIn("exited with 1", refused)
            self.assertIn("another server is listening there", refused)
            self.serving(ready[0], "unix")
            ready[0].stop()
            self.assertFalse(os.path.exists(path))

    def test_a_stop_or_a_crash_leaves_another_glockds_socket_alone(self):
        path = os.path.join(self.tmp, "shared.sock")
        for sig in (signal.SIGTERM, signal.SIGSEGV):
            first = self.daemon(tcp=False, unix_path=path, name="first%d" % sig)
            os.unlink(path)  # an operator (or a temp cleaner) removes it
            second = self.daemon(tcp=False, unix_path=path, name="second%d" % sig)
            first.proc.send_signal(sig)
            first.proc.wait(TIMEOUT)
            self.assertTrue(os.path.exists(path), "the second glockd's socket was removed")
            self.serving(second, "unix")
            second.stop()
            self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()

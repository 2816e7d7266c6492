#!/usr/bin/python3
"""Limits and environment: --max-connections, TCP keepalive on accepted
sockets, dual-stack naming of IPv4 peers, io_uring unavailable."""
import os
import shutil
import socket
import subprocess
import unittest

from harness import (BIN, TIMEOUT, DaemonTestCase, Daemon, g_ok, i_yes, free_port, tail)


class MaxConnections(DaemonTestCase):
    def test_connections_over_the_limit_are_closed_others_keep_their_locks(self):
        d = self.daemon(args=["--max-connections", "4"])
        probe = self.client(d)
        # The start-up probe's connection may still be closing: wait for it.
        self.settle(probe, connections=1)
        held = [self.client(d) for _ in range(3)]
        for n, c in enumerate(held):
            self.assertEqual(c.req("g k%d" % n), g_ok("k%d" % n))
        extra = socket.create_connection(("127.0.0.1", d.port), timeout=TIMEOUT)
        try:
            # Accepted and closed at once: EOF (or a reset), never an answer.
            extra.sendall(b"i k0\n")
            try:
                self.assertEqual(extra.recv(100), b"")
            except ConnectionResetError:
                pass
        finally:
            extra.close()
        self.wait_log(d, "--max-connections (4) reached")
        for n, c in enumerate(held):
            self.assertEqual(c.req("i k%d" % n), i_yes("k%d" % n))
        # A slot freed by a disconnect is usable again.
        held[2].close()
        self.settle(held[0], connections=3)
        again = self.client(d)
        self.assertEqual(again.req("g k2"), g_ok("k2"))


class Keepalive(DaemonTestCase):
    def established_timers(self, port):
        out = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d )" % port],
                             capture_output=True, text=True, timeout=TIMEOUT).stdout
        return out

    def test_accepted_sockets_carry_keepalive(self):
        if not shutil.which("ss"):
            self.skipTest("ss (iproute2) is not installed")
        d = self.daemon(args=["--keepalive", "45"])
        c = self.client(d)
        self.assertEqual(c.req("g ka"), g_ok("ka"))
        out = self.established_timers(d.port)
        self.assertIn("timer:(keepalive", out, out)

    def test_keepalive_zero_turns_it_off(self):
        if not shutil.which("ss"):
            self.skipTest("ss (iproute2) is not installed")
        d = self.daemon(args=["--keepalive", "0"])
        c = self.client(d)
        self.assertEqual(c.req("g ka"), g_ok("ka"))
        out = self.established_timers(d.port)
        self.assertTrue(out.strip(), "no server-side socket listed")
        self.assertNotIn("keepalive", out, out)


class DualStack(DaemonTestCase):
    def test_ipv4_peer_of_the_default_dual_stack_listener_prints_as_ipv4(self):
        # No --bind: one [::] listener that also takes IPv4 (mapped) peers.
        d = self.daemon(argv=lambda dd: ["--port", str(dd.port), "--ws", "0"])
        c = self.client(d)
        me = c.req("me").decode()
        host, port = c.sock.getsockname()[:2]
        self.assertEqual(me, "1 %s:%d %s:%d\n" % (host, port, host, port))


class NoIoUring(unittest.TestCase):
    def run_blocked(self, errno_name):
        helper = os.environ.get("FAIL_SYSCALL_BIN")
        if not helper or not os.path.exists(helper):
            self.skipTest("FAIL_SYSCALL_BIN (the seccomp helper) is not built")
        p = subprocess.run([helper, "io_uring_setup", errno_name, BIN, "--port", str(free_port()), "--bind",
                            "127.0.0.1", "--ws", "0"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        return p

    def test_seccomp_eperm_names_the_cause_and_fix(self):
        p = self.run_blocked("EPERM")
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertGreater(p.returncode, 0, "crashed: %d\n%s" % (p.returncode, p.stderr))
        self.assertIn("seccomp", p.stderr)
        self.assertIn("io_uring_setup", p.stderr)

    def test_enosys_names_the_cause_and_fix(self):
        p = self.run_blocked("ENOSYS")
        self.assertGreater(p.returncode, 0, "crashed or succeeded: %d\n%s"
                           % (p.returncode, p.stderr))
        self.assertIn("io_uring is not available", p.stderr)
        self.assertIn("5.19", p.stderr)


if __name__ == "__main__":
    unittest.main()

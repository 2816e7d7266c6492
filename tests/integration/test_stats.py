# The q command: exact key set and format, exact values after a scripted
# multi-client session, connection counting (including connections the
# kernel accepted just before q), and 1000 concurrent lock holders.

import os
import re
import resource
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DaemonTestCase, Q_KEYS, OK, DISABLED, g_ok, g_fail, r_ok, r_fail,  # noqa: E402
                     i_yes, i_no, sg_ok, sr_ok, sr_fail, si_yes)


class StatsFormat(DaemonTestCase):

    def test_exactly_nineteen_sorted_keys(self):
        d = self.daemon()
        a = self.client(d)
        got = a.multi("q")   # reads until the sentinel: catches extra lines
        self.assertEqual(len(got), 19, got)
        keys = []
        for ln in got:
            m = re.match(rb"^([a-z_]+): (0|[1-9][0-9]*)\n$", ln)
            self.assertIsNotNone(m, ln)
            keys.append(m.group(1).decode())
        self.assertEqual(keys, Q_KEYS)
        self.assertEqual(keys, sorted(keys))

    def test_fresh_daemon_values(self):
        d = self.daemon()
        a = self.client(d)
        n, q = self.settle(a, connections=1)
        want = dict.fromkeys(Q_KEYS, 0)
        want["command_q"] = n
        want["connections"] = 1
        self.assertEqual(q, want)

    def test_q_counts_itself(self):
        d = self.daemon()
        a = self.client(d)
        for k in range(1, 6):
            self.assertEqual(a.q()["command_q"], k)
        a.send(b"q\nq\nq\n")
        vals = []
        for _ in range(3):
            block = a.lines(19)
            vals.append(block[Q_KEYS.index("command_q")])
        self.assertEqual(vals, [b"command_q: 6\n", b"command_q: 7\n", b"command_q: 8\n"])

    def test_values_after_scripted_session(self):
        d = self.daemon(unix=True)
        a = self.client(d)
        nq, _ = self.settle(a, connections=1)
        b = self.client(d)
        c = self.client(d, "unix")
        A = a.addr()
        # a: g x3 (one re-get), r x2 (one failure), i x2
        self.assertEqual(a.req("g a"), g_ok("a"))
        self.assertEqual(a.req("g a"), g_ok("a"))
        self.assertEqual(a.req("g b"), g_ok("b"))
        self.assertEqual(a.req("r b"), r_ok("b"))
        self.assertEqual(a.req("r zz"), r_fail("zz"))
        self.assertEqual(a.req("i a"), i_yes("a"))
        self.assertEqual(a.req("i zz"), i_no("zz"))
        # b: g1 i1 sg2 si1 sr2
        self.assertEqual(b.req("g a"), g_fail("a"))
        self.assertEqual(b.req("i a"), i_yes("a"))
        self.assertEqual(b.req("sg s"), sg_ok(1, "s"))
        self.assertEqual(b.req("si s"), si_yes(1, "s"))
        self.assertEqual(b.req("sr s"), sr_ok("s"))
        self.assertEqual(b.req("sr s"), sr_fail("s"))
        self.assertEqual(b.req("sg s2"), sg_ok(1, "s2"))
        # a: sg1; c: sg2 g1
        self.assertEqual(a.req("sg s2"), sg_ok(2, "s2"))
        self.assertEqual(c.req("sg s2"), sg_ok(3, "s2"))
        self.assertEqual(c.req("g c"), g_ok("c"))
        self.assertEqual(c.req("sg s3"), sg_ok(1, "s3"))
        # inspection and registry on a: d1 sd1 dump2 me1 iam1 who1
        self.assertEqual(sorted(a.req("d", 2)), sorted([b"a: " + A.encode() + b"\n",
                                                         b"c: unix:1\n"]))
        self.assertEqual(len(a.req("sd s2", 3)), 3)
        self.assertEqual(a.req("dump"), ("map[a:%s c:unix:1]\n" % A).encode())
        self.assertEqual(a.req("dump shared"),
                         ("map[s2:[%s %s unix:1] s3:[unix:1]]\n" % (b.addr(), A)).encode())
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())
        self.assertEqual(a.req("iam alice"), OK)
        self.assertEqual(a.req("who"), ("%s: alice\n" % A).encode())
        # b: two invalid commands, blank lines (not counted), then i a
        b.send(b"bogus\n  \n\r\nG a\n\n")
        self.assertEqual(b.req("i a"), i_yes("a"))
        # c goes away holding c, s2, s3
        c.close()
        n, q = self.settle(a, orphans=1, shared_orphans=2)
        nq += n
        want = {
            "command_d": 1, "command_dump": 2, "command_g": 5, "command_i": 4,
            "command_iam": 1, "command_me": 1, "command_q": nq, "command_r": 2,
            "command_sd": 1, "command_sg": 5, "command_si": 1, "command_sr": 2,
            "command_who": 1, "connections": 2, "invalid_commands": 2, "locks": 1,
            "orphans": 1, "shared_locks": 1, "shared_orphans": 2,
        }
        self.assertEqual(q, want)

    def test_part2_requests_leave_q_alone(self):
        # Part 2 commands never change q's key set or the Part 1 counters.
        d = self.daemon()
        a = self.client(d)
        q0 = a.q()
        for req in ("t x", "ra", "session", "grace 0", "w 0 x", "sw 1 0 y", "resume nope"):
            a.multi(req)   # whatever the answer, read up to the sentinel
        q1 = a.q()         # parses and checks exactly the 19 keys
        for k in ("command_d", "command_dump", "command_g", "command_iam", "command_me",
                  "command_r", "command_sd", "command_sg", "command_si", "command_sr",
                  "command_who"):
            self.assertEqual(q1[k], q0[k], k)
        self.assertEqual(q1["command_q"], q0["command_q"] + 1)

    def test_disabled_commands_still_counted(self):
        d = self.daemon(args=["--dump=false", "--registry=false"])
        a = self.client(d)
        for req in ("d", "d x", "sd", "dump", "dump shared", "who", "who x", "iam x"):
            self.assertEqual(a.req(req), DISABLED, req)
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (a.addr(), a.addr())).encode())
        q = a.q()
        self.assertEqual((q["command_d"], q["command_sd"], q["command_dump"], q["command_who"],
                          q["command_iam"], q["command_me"], q["invalid_commands"]),
                         (2, 1, 2, 2, 1, 1, 0))


class ConnectionCounting(DaemonTestCase):

    def test_connection_accepted_just_before_q(self):
        # A client connects, then q is sent at once from another connection:
        # the new connection must already be counted.
        d = self.daemon(unix=True)
        a = self.client(d)
        self.settle(a, connections=1)
        for k in range(1, 31):
            self.client(d, "unix" if k % 3 == 0 else "tcp")
            self.assertEqual(a.q()["connections"], 1 + k, "after %d new connections" % k)

    def test_connections_drop_on_close(self):
        d = self.daemon(unix=True)
        a = self.client(d)
        self.settle(a, connections=1)
        others = [self.client(d, "unix" if k % 2 else "tcp") for k in range(6)]
        self.assertEqual(a.q()["connections"], 7)
        for o in others[:3]:
            o.close()
        others[3].reset()
        self.settle(a, connections=3)


class ManyConnections(DaemonTestCase):

    N = 1000

    def setUp(self):
        super().setUp()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 2 * self.N + 200   # our sockets; the daemon inherits this limit
        if soft < need:
            new = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

    def test_1000_concurrent_lock_holders(self):
        d = self.daemon()
        mon = self.client(d)
        self.settle(mon, connections=1)
        clients = []
        for k in range(self.N):
            clients.append(self.client(d))
        for k, c in enumerate(clients):
            c.send(b"g lock-%d\n" % k)
        for k, c in enumerate(clients):
            self.assertEqual(c.readline(), g_ok("lock-%d" % k))
        q = mon.q()
        self.assertGreaterEqual(q["connections"], self.N + 1)
        self.assertEqual(q["connections"], self.N + 1)
        self.assertEqual(q["locks"], self.N)
        # Everyone sees everyone else's lock.
        self.assertEqual(clients[0].req("g lock-%d" % (self.N - 1)), g_fail("lock-%d" % (self.N - 1)))
        self.assertEqual(clients[-1].req("i lock-0"), i_yes("lock-0"))
        for k, c in enumerate(clients):
            if k % 2:
                c.reset()
            else:
                c.close()
        _, q = self.settle(mon, connections=1, locks=0)
        self.assertEqual(q["orphans"], self.N)
        self.assertEqual(mon.req("g lock-7"), g_ok("lock-7"))


if __name__ == "__main__":
    unittest.main()

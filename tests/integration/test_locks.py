# Exclusive and shared lock semantics between several clients, and orphaning
# of locks when a connection goes away (clean close, RST, half close).

import os
import sys
import socket
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DaemonTestCase, g_ok, g_fail, r_ok, r_fail, i_yes, i_no,  # noqa: E402
                     sg_ok, sr_ok, sr_fail, si_yes, si_no)


class ExclusiveLocks(DaemonTestCase):

    def test_get_release_inspect_between_two_clients(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("i foo"), b"0 Lock Not Locked: foo\n")
        self.assertEqual(a.req("g foo"), b"1 Lock Get Success: foo\n")
        self.assertEqual(c.req("i foo"), b"1 Lock Is Locked: foo\n")
        self.assertEqual(a.req("i foo"), b"1 Lock Is Locked: foo\n")
        self.assertEqual(c.req("g foo"), b"0 Lock Get Failure: foo\n")
        # Re-get by the holder succeeds.
        self.assertEqual(a.req("g foo"), b"1 Lock Get Success: foo\n")
        # Release by a non-holder fails and changes nothing.
        self.assertEqual(c.req("r foo"), b"0 Lock Release Failure: foo\n")
        self.assertEqual(c.req("i foo"), b"1 Lock Is Locked: foo\n")
        self.assertEqual(c.req("g foo"), b"0 Lock Get Failure: foo\n")
        # Release by the holder; then the other client can take it.
        self.assertEqual(a.req("r foo"), b"1 Lock Release Success: foo\n")
        self.assertEqual(a.req("r foo"), b"0 Lock Release Failure: foo\n")
        self.assertEqual(c.req("i foo"), b"0 Lock Not Locked: foo\n")
        self.assertEqual(c.req("g foo"), b"1 Lock Get Success: foo\n")
        self.assertEqual(a.req("g foo"), b"0 Lock Get Failure: foo\n")
        self.assertEqual(a.req("r foo"), b"0 Lock Release Failure: foo\n")
        self.assertEqual(c.req("r foo"), b"1 Lock Release Success: foo\n")
        self.assertEqual(a.req("i foo"), b"0 Lock Not Locked: foo\n")

    def test_regets_do_not_stack(self):
        # Getting twice then releasing once frees the lock (no counting).
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("r x"), r_ok("x"))
        self.assertEqual(c.req("i x"), i_no("x"))
        self.assertEqual(c.req("g x"), g_ok("x"))

    def test_release_of_never_locked_name(self):
        d = self.daemon()
        a = self.client(d)
        self.assertEqual(a.req("r nothing"), r_fail("nothing"))
        self.assertEqual(a.req("i nothing"), i_no("nothing"))

    def test_many_names_per_client(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        for k in range(20):
            self.assertEqual(a.req("g a%d" % k), g_ok("a%d" % k))
            self.assertEqual(c.req("g c%d" % k), g_ok("c%d" % k))
        for k in range(20):
            self.assertEqual(c.req("g a%d" % k), g_fail("a%d" % k))
            self.assertEqual(a.req("g c%d" % k), g_fail("c%d" % k))
            self.assertEqual(a.req("i c%d" % k), i_yes("c%d" % k))
        for k in range(0, 20, 2):
            self.assertEqual(a.req("r a%d" % k), r_ok("a%d" % k))
        for k in range(20):
            want = g_ok("a%d" % k) if k % 2 == 0 else g_fail("a%d" % k)
            self.assertEqual(c.req("g a%d" % k), want)

    def test_three_clients_and_unix_transport(self):
        d = self.daemon(unix=True)
        a, c, u = self.client(d), self.client(d), self.client(d, "unix")
        self.assertEqual(u.req("g shared-name"), g_ok("shared-name"))
        self.assertEqual(a.req("g shared-name"), g_fail("shared-name"))
        self.assertEqual(c.req("i shared-name"), i_yes("shared-name"))
        self.assertEqual(a.req("r shared-name"), r_fail("shared-name"))
        self.assertEqual(u.req("r shared-name"), r_ok("shared-name"))
        self.assertEqual(a.req("g shared-name"), g_ok("shared-name"))
        self.assertEqual(u.req("g shared-name"), g_fail("shared-name"))


class SharedLocks(DaemonTestCase):

    def test_counting_between_clients(self):
        d = self.daemon()
        a, c, e = self.client(d), self.client(d), self.client(d)
        self.assertEqual(e.req("si foo"), b"0 Shared Lock Not Locked: foo\n")
        self.assertEqual(a.req("sg foo"), b"1 Shared Lock Get Success: foo\n")
        # A second sg by the same connection does not count twice.
        self.assertEqual(a.req("sg foo"), b"1 Shared Lock Get Success: foo\n")
        self.assertEqual(e.req("si foo"), b"1 Shared Lock Is Locked: foo\n")
        self.assertEqual(c.req("sg foo"), b"2 Shared Lock Get Success: foo\n")
        self.assertEqual(a.req("sg foo"), b"2 Shared Lock Get Success: foo\n")
        self.assertEqual(c.req("sg foo"), b"2 Shared Lock Get Success: foo\n")
        self.assertEqual(e.req("si foo"), b"2 Shared Lock Is Locked: foo\n")
        # Holders get the same count from si (whoever asks).
        self.assertEqual(a.req("si foo"), b"2 Shared Lock Is Locked: foo\n")
        self.assertEqual(e.req("sg foo"), b"3 Shared Lock Get Success: foo\n")
        self.assertEqual(a.req("si foo"), b"3 Shared Lock Is Locked: foo\n")
        # Release.
        self.assertEqual(a.req("sr foo"), b"1 Shared Lock Release Success: foo\n")
        # A second release by the same connection fails (it no longer holds it).
        self.assertEqual(a.req("sr foo"), b"0 Shared Lock Release Failure: foo\n")
        self.assertEqual(a.req("si foo"), b"2 Shared Lock Is Locked: foo\n")
        self.assertEqual(c.req("sr foo"), b"1 Shared Lock Release Success: foo\n")
        self.assertEqual(a.req("si foo"), b"1 Shared Lock Is Locked: foo\n")
        self.assertEqual(e.req("sr foo"), b"1 Shared Lock Release Success: foo\n")
        self.assertEqual(a.req("si foo"), b"0 Shared Lock Not Locked: foo\n")
        self.assertEqual(e.req("sr foo"), b"0 Shared Lock Release Failure: foo\n")
        # Taking it again starts from 1.
        self.assertEqual(c.req("sg foo"), b"1 Shared Lock Get Success: foo\n")

    def test_sg_twice_then_one_sr_releases(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        self.assertEqual(c.req("sg s"), sg_ok(2, "s"))
        self.assertEqual(a.req("sr s"), sr_ok("s"))
        self.assertEqual(c.req("si s"), si_yes(1, "s"))
        self.assertEqual(a.req("sr s"), sr_fail("s"))
        self.assertEqual(c.req("si s"), si_yes(1, "s"))

    def test_release_by_non_holder_fails(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("sg s"), sg_ok(1, "s"))
        self.assertEqual(c.req("sr s"), sr_fail("s"))
        self.assertEqual(c.req("si s"), si_yes(1, "s"))
        self.assertEqual(c.req("sr never"), sr_fail("never"))

    def test_many_holders(self):
        d = self.daemon(unix=True)
        clients = [self.client(d, "unix" if k % 2 else "tcp") for k in range(10)]
        for k, c in enumerate(clients):
            self.assertEqual(c.req("sg many"), sg_ok(k + 1, "many"))
        for k, c in enumerate(clients):
            self.assertEqual(c.req("si many"), si_yes(10 - k, "many"))
            self.assertEqual(c.req("sr many"), sr_ok("many"))
        self.assertEqual(clients[0].req("si many"), si_no("many"))

    def test_shared_and_exclusive_namespaces_are_independent(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g foo"), g_ok("foo"))
        self.assertEqual(c.req("si foo"), si_no("foo"))
        self.assertEqual(c.req("sg foo"), sg_ok(1, "foo"))
        self.assertEqual(a.req("sg foo"), sg_ok(2, "foo"))
        self.assertEqual(c.req("i foo"), i_yes("foo"))
        self.assertEqual(c.req("g foo"), g_fail("foo"))
        # sr does not touch the exclusive lock, r does not touch the shared one.
        self.assertEqual(c.req("r foo"), r_fail("foo"))
        self.assertEqual(a.req("r foo"), r_ok("foo"))
        self.assertEqual(a.req("si foo"), si_yes(2, "foo"))
        self.assertEqual(a.req("sr foo"), sr_ok("foo"))
        self.assertEqual(a.req("i foo"), i_no("foo"))
        self.assertEqual(a.req("si foo"), si_yes(1, "foo"))
        # The exclusive lock on a shared-held name can be taken by anyone.
        self.assertEqual(a.req("g foo"), g_ok("foo"))
        self.assertEqual(c.req("sr foo"), sr_ok("foo"))
        self.assertEqual(c.req("si foo"), si_no("foo"))
        self.assertEqual(c.req("i foo"), i_yes("foo"))
        q = c.q()
        self.assertEqual((q["locks"], q["shared_locks"]), (1, 0))


class Orphaning(DaemonTestCase):

    def _holder_goes_away(self, how, kind="tcp"):
        d = self.daemon(unix=(kind == "unix"))
        a = self.client(d, kind)
        c = self.client(d)
        other = self.client(d)
        self.assertEqual(a.req("g ex1"), g_ok("ex1"))
        self.assertEqual(a.req("g ex2"), g_ok("ex2"))
        self.assertEqual(a.req("sg sh1"), sg_ok(1, "sh1"))
        self.assertEqual(a.req("sg sh1"), sg_ok(1, "sh1"))  # counted once
        self.assertEqual(other.req("sg sh1"), sg_ok(2, "sh1"))
        self.assertEqual(a.req("sg sh2"), sg_ok(1, "sh2"))
        self.assertEqual(c.req("g ex1"), g_fail("ex1"))
        q0 = c.q()
        self.assertEqual((q0["orphans"], q0["shared_orphans"]), (0, 0))
        self.assertEqual((q0["locks"], q0["shared_locks"]), (2, 2))
        how(a)
        self.wait_answer(c, "i ex1", i_no("ex1"))
        self.wait_answer(c, "si sh2", si_no("sh2"))
        self.assertEqual(c.req("i ex2"), i_no("ex2"))
        self.assertEqual(c.req("si sh1"), si_yes(1, "sh1"))
        self.assertEqual(c.req("g ex1"), g_ok("ex1"))
        self.assertEqual(c.req("sg sh1"), sg_ok(2, "sh1"))
        _, q = self.settle(c, orphans=2, shared_orphans=2)
        self.assertEqual(q["locks"], 1)          # ex1, now held by c
        self.assertEqual(q["shared_locks"], 1)   # sh1 (other, c)
        self.assertEqual(q["connections"], 2)
        return d

    def test_clean_close(self):
        self._holder_goes_away(lambda a: a.close())

    def test_reset(self):
        self._holder_goes_away(lambda a: a.reset())

    def test_unix_close(self):
        self._holder_goes_away(lambda a: a.close(), kind="unix")

    def test_unix_reset(self):
        # SO_LINGER has no RST on unix sockets; close with unread data instead.
        def go(a):
            a.send(b"i x\ni y\n")  # answers left unread
            a.close()
        self._holder_goes_away(go, kind="unix")

    def test_shared_only_holder_leaves(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("sg solo"), sg_ok(1, "solo"))
        a.close()
        self.wait_answer(c, "si solo", si_no("solo"))
        _, q = self.settle(c, shared_orphans=1)
        self.assertEqual((q["orphans"], q["shared_locks"]), (0, 0))

    def test_released_locks_are_not_orphans(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g one"), g_ok("one"))
        self.assertEqual(a.req("sg two"), sg_ok(1, "two"))
        self.assertEqual(a.req("r one"), r_ok("one"))
        self.assertEqual(a.req("sr two"), sr_ok("two"))
        self.assertEqual(a.req("g three"), g_ok("three"))
        a.close()
        self.wait_answer(c, "i three", i_no("three"))
        _, q = self.settle(c, connections=1)
        self.assertEqual((q["orphans"], q["shared_orphans"]), (1, 0))

    def test_reset_with_unread_answers_pending(self):
        # The daemon is still sending answers when the peer resets.
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g pend"), g_ok("pend"))
        a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        a.send(b"i pend\n" * 5000)
        a.reset()
        self.wait_answer(c, "i pend", i_no("pend"))
        self.assertEqual(c.req("g pend"), g_ok("pend"))
        self.settle(c, connections=1, orphans=1)

    def test_lock_taken_in_last_segment_before_close(self):
        # "g z" and the FIN arrive together: whether or not the daemon
        # processes the g, the lock must not survive the connection.
        d = self.daemon()
        c = self.client(d)
        for k in range(20):
            a = self.client(d)
            a.send(b"g last%d\n" % k)
            a.close()
        for k in range(20):
            self.wait_answer(c, "i last%d" % k, i_no("last%d" % k))
        _, q = self.settle(c, connections=1)
        self.assertEqual(q["locks"], 0)

    def test_half_close_still_answers(self):
        # printf 'g foo\ni foo\n' | nc -N: requests read before EOF are
        # answered, then the daemon closes and the lock is orphaned.
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b"g half\ni half\n")
        a.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(a.readline(), g_ok("half"))
        self.assertEqual(a.readline(), i_yes("half"))
        self.assertEqual(a.expect_eof(), b"")
        self.wait_answer(c, "i half", i_no("half"))
        self.settle(c, connections=1, orphans=1)

    def test_many_locks_orphaned_at_once(self):
        # 15,000 locks on one connection: past the default bound (10,000),
        # raised here as an operator would.
        d = self.daemon(args=["--max-locks-per-connection", "20000"])
        a, c = self.client(d), self.client(d)
        n_ex, n_sh = 10000, 5000
        a.send(b"".join(b"g e%d\n" % k for k in range(n_ex)) +
               b"".join(b"sg s%d\n" % k for k in range(n_sh)))
        got = a.lines(n_ex + n_sh)
        self.assertEqual(got[0], g_ok("e0"))
        self.assertEqual(got[-1], sg_ok(1, "s%d" % (n_sh - 1)))
        self.assertEqual(c.req("g e%d" % (n_ex - 1)), g_fail("e%d" % (n_ex - 1)))
        q = c.q()
        self.assertEqual((q["locks"], q["shared_locks"]), (n_ex, n_sh))
        # Big multi-line and one-line answers.
        A = a.addr()
        d_lines = c.multi("d")
        self.assertEqual(len(d_lines), n_ex)
        self.assertEqual(sorted(d_lines), sorted(b"e%d: %s\n" % (k, A.encode()) for k in range(n_ex)))
        self.assertEqual(len(c.multi("sd")), n_sh)
        keys = sorted(b"e%d" % k for k in range(n_ex))
        want = b"map[" + b" ".join(k + b":" + A.encode() for k in keys) + b"]\n"
        self.assertEqual(c.req("dump"), want)
        a.close()
        _, q = self.settle(c, connections=1, orphans=n_ex, shared_orphans=n_sh)
        self.assertEqual((q["locks"], q["shared_locks"]), (0, 0))
        self.assertEqual(c.req("g e0"), g_ok("e0"))

    def test_connect_and_reset_without_data(self):
        d = self.daemon(unix=True)
        c = self.client(d)
        for k in range(50):
            x = d.client("unix" if k % 5 == 0 else "tcp")
            if k % 2:
                x.reset()
            else:
                x.close()
        self.settle(c, connections=1)
        self.assertEqual(c.req("g alive"), g_ok("alive"))

    def test_shared_holder_order_after_orphan(self):
        d = self.daemon()
        cs = [self.client(d) for _ in range(4)]
        for k, x in enumerate(cs):
            self.assertEqual(x.req("sg order"), sg_ok(k + 1, "order"))
        addrs = [x.addr() for x in cs]
        cs[1].close()
        self.wait_answer(cs[0], "si order", si_yes(3, "order"))
        want = "map[order:[%s %s %s]]\n" % (addrs[0], addrs[2], addrs[3])
        self.assertEqual(cs[0].req("dump shared"), want.encode())
        self.assertEqual(cs[3].req("sg order"), sg_ok(3, "order"))

    def test_lock_can_be_retaken_after_each_disconnect(self):
        d = self.daemon()
        c = self.client(d)
        for k in range(10):
            a = self.client(d)
            self.assertEqual(a.req("g hot"), g_ok("hot"))
            self.assertEqual(c.req("g hot"), g_fail("hot"))
            if k % 2:
                a.reset()
            else:
                a.close()
            self.wait_answer(c, "i hot", i_no("hot"))
        self.settle(c, connections=1, orphans=10)


if __name__ == "__main__":
    unittest.main()

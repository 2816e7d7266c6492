# Inspection (d, sd, dump, dump shared), the registry (me, iam, who), the
# --dump / --registry switches and connection names (ADDR) per transport.

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DaemonTestCase, DISABLED, OK, g_ok, i_no, r_ok,  # noqa: E402
                     sg_ok, sr_ok, si_no)


def lines_of(*texts):
    return [t.encode() + b"\n" if isinstance(t, str) else t + b"\n" for t in texts]


class Addresses(DaemonTestCase):

    def test_tcp_addr_matches_getsockname(self):
        d = self.daemon()
        for _ in range(3):
            a = self.client(d)
            addr = a.addr()
            self.assertTrue(addr.startswith("127.0.0.1:"))
            self.assertEqual(a.req("me"), ("1 %s %s\n" % (addr, addr)).encode())

    def test_ipv6_addr(self):
        d = self.daemon(ipv6=True)
        a6 = self.client(d, "tcp6")
        a4 = self.client(d, "tcp")
        addr6 = a6.addr()
        self.assertTrue(addr6.startswith("[::1]:"), addr6)
        self.assertEqual(a6.req("me"), ("1 %s %s\n" % (addr6, addr6)).encode())
        self.assertEqual(a6.req("g v6"), g_ok("v6"))
        self.assertEqual(a4.req("g v6"), b"0 Lock Get Failure: v6\n")
        self.assertEqual(a4.req("g v4"), g_ok("v4"))
        self.assertEqual(a6.req("dump"),
                         ("map[v4:%s v6:%s]\n" % (a4.addr(), addr6)).encode())
        self.assertEqual(a4.req("d v6"), ("v6: %s\n" % addr6).encode())

    def test_unix_addr_counts_from_one(self):
        # Unix only (--port 0), so nothing but these clients touches the socket.
        d = self.daemon(tcp=False, unix=True)
        u1 = self.client(d, "unix")
        self.assertEqual(u1.req("me"), b"1 unix:1 unix:1\n")
        u2 = self.client(d, "unix")
        self.assertEqual(u2.req("me"), b"1 unix:2 unix:2\n")
        u2.close()
        u3 = self.client(d, "unix")
        self.assertEqual(u3.req("me"), b"1 unix:3 unix:3\n")
        self.assertEqual(u1.req("me"), b"1 unix:1 unix:1\n")
        self.assertEqual(u3.req("g u"), g_ok("u"))
        self.assertEqual(u1.req("dump"), b"map[u:unix:3]\n")
        self.assertEqual(u1.req("d"), b"u: unix:3\n")

    def test_unix_counter_ignores_tcp_connections(self):
        # unix:N counts unix connections (the original glockd's counter);
        # TCP connections in between do not use up numbers.
        d = self.daemon(unix=True)
        t1 = self.client(d)
        t2 = self.client(d)
        u1 = self.client(d, "unix")
        t3 = self.client(d)
        u2 = self.client(d, "unix")
        self.assertEqual(u1.req("me"), b"1 unix:1 unix:1\n")
        self.assertEqual(u2.req("me"), b"1 unix:2 unix:2\n")
        for t in (t1, t2, t3):
            self.assertEqual(t.req("me"), ("1 %s %s\n" % (t.addr(), t.addr())).encode())


class Dump(DaemonTestCase):

    def test_empty(self):
        d = self.daemon()
        a = self.client(d)
        self.assertEqual(a.req("dump"), b"map[]\n")
        self.assertEqual(a.req("dump shared"), b"map[]\n")
        self.assertEqual(a.multi("d"), [])
        self.assertEqual(a.multi("sd"), [])
        self.assertEqual(a.multi("d foo"), [])
        self.assertEqual(a.multi("sd foo"), [])

    def test_d_and_dump_exclusive(self):
        d = self.daemon(unix=True)
        a, c, u = self.client(d), self.client(d), self.client(d, "unix")
        A, C = a.addr(), c.addr()
        self.assertEqual(a.req("g foo"), g_ok("foo"))
        self.assertEqual(u.req("g bar"), g_ok("bar"))
        self.assertEqual(a.req("g   my   lock"), g_ok("my lock"))
        self.assertEqual(c.req("g Zed"), g_ok("Zed"))
        self.assertEqual(c.req("g"), g_ok(""))
        self.assertEqual(c.req("sg notexclusive"), sg_ok(1, "notexclusive"))
        # Go map notation, keys sorted bytewise, raw ADDRs as values.
        want = "map[:%s Zed:%s bar:unix:1 foo:%s my lock:%s]\n" % (C, C, A, A)
        self.assertEqual(u.req("dump"), want.encode())
        # d: one line per held exclusive lock (order unspecified).
        self.assertEqual(sorted(u.multi("d")), sorted(lines_of(
            ": " + C, "Zed: " + C, "bar: unix:1", "foo: " + A, "my lock: " + A)))
        self.assertEqual(u.multi("d foo"), lines_of("foo: " + A))
        self.assertEqual(u.multi("d   my \t lock "), lines_of("my lock: " + A))
        self.assertEqual(u.multi("d bar"), lines_of("bar: unix:1"))
        self.assertEqual(u.multi("d free"), [])
        self.assertEqual(u.multi("d notexclusive"), [])
        self.assertEqual(a.req("r foo"), r_ok("foo"))
        self.assertEqual(u.multi("d foo"), [])
        want = "map[:%s Zed:%s bar:unix:1 my lock:%s]\n" % (C, C, A)
        self.assertEqual(a.req("dump"), want.encode())

    def test_sd_and_dump_shared(self):
        d = self.daemon(unix=True)
        a, c, u = self.client(d), self.client(d), self.client(d, "unix")
        A, C = a.addr(), c.addr()
        self.assertEqual(a.req("sg s1"), sg_ok(1, "s1"))
        self.assertEqual(u.req("sg s1"), sg_ok(2, "s1"))
        self.assertEqual(c.req("sg s1"), sg_ok(3, "s1"))
        self.assertEqual(a.req("sg s1"), sg_ok(3, "s1"))  # no double entry
        self.assertEqual(u.req("sg s0"), sg_ok(1, "s0"))
        self.assertEqual(c.req("g excl"), g_ok("excl"))
        # Holders in the order they took the lock.
        want = "map[s0:[unix:1] s1:[%s unix:1 %s]]\n" % (A, C)
        self.assertEqual(c.req("dump shared"), want.encode())
        self.assertEqual(sorted(c.multi("sd s1")),
                         sorted(lines_of("s1: " + A, "s1: unix:1", "s1: " + C)))
        self.assertEqual(sorted(c.multi("sd")),
                         sorted(lines_of("s1: " + A, "s1: unix:1", "s1: " + C, "s0: unix:1")))
        self.assertEqual(c.multi("sd s0"), lines_of("s0: unix:1"))
        self.assertEqual(c.multi("sd excl"), [])
        self.assertEqual(c.multi("sd nothing"), [])
        # Releasing and re-taking moves a holder to the end.
        self.assertEqual(u.req("sr s1"), sr_ok("s1"))
        want = "map[s0:[unix:1] s1:[%s %s]]\n" % (A, C)
        self.assertEqual(c.req("dump shared"), want.encode())
        self.assertEqual(u.req("sg s1"), sg_ok(3, "s1"))
        want = "map[s0:[unix:1] s1:[%s %s unix:1]]\n" % (A, C)
        self.assertEqual(c.req("dump shared"), want.encode())
        self.assertEqual(u.req("sr s0"), sr_ok("s0"))
        want = "map[s1:[%s %s unix:1]]\n" % (A, C)
        self.assertEqual(a.req("dump shared"), want.encode())
        # The exclusive map is separate.
        self.assertEqual(a.req("dump"), ("map[excl:%s]\n" % C).encode())

    def test_d_and_sd_show_registered_names_dump_shows_addrs(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        A, C = a.addr(), c.addr()
        self.assertEqual(a.req("g lk"), g_ok("lk"))
        self.assertEqual(a.req("sg sl"), sg_ok(1, "sl"))
        self.assertEqual(c.req("sg sl"), sg_ok(2, "sl"))
        self.assertEqual(a.req("iam  worker \t one"), OK)
        self.assertEqual(c.multi("d lk"), lines_of("lk: worker one"))
        self.assertEqual(sorted(c.multi("sd sl")), sorted(lines_of("sl: worker one", "sl: " + C)))
        self.assertEqual(c.req("dump"), ("map[lk:%s]\n" % A).encode())
        self.assertEqual(c.req("dump shared"), ("map[sl:[%s %s]]\n" % (A, C)).encode())
        # Dropping the registration brings back the ADDR.
        self.assertEqual(a.req("iam"), OK)
        self.assertEqual(c.multi("d lk"), lines_of("lk: " + A))
        self.assertEqual(sorted(c.multi("sd sl")), sorted(lines_of("sl: " + A, "sl: " + C)))

    def test_dump_disabled(self):
        d = self.daemon(args=["--dump=false"])
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g x"), g_ok("x"))
        self.assertEqual(a.req("sg y"), sg_ok(1, "y"))
        for req in ("d", "d x", "sd", "sd y", "dump", "dump shared", "who", "who x"):
            self.assertEqual(c.multi(req), [DISABLED], req)
        # The registry still works without dump, but who needs both.
        self.assertEqual(c.req("iam named"), OK)
        self.assertEqual(c.req("me"), ("1 %s named\n" % c.addr()).encode())
        self.assertEqual(c.multi("who"), [DISABLED])
        q = c.q()
        self.assertEqual((q["command_d"], q["command_sd"], q["command_dump"], q["command_who"]),
                         (2, 2, 2, 3))
        self.assertEqual(q["invalid_commands"], 0)


class Registry(DaemonTestCase):

    def test_me_and_iam(self):
        d = self.daemon()
        a = self.client(d)
        A = a.addr()
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())
        self.assertEqual(a.req("iam alice"), b"1 ok\n")
        self.assertEqual(a.req("me"), ("1 %s alice\n" % A).encode())
        self.assertEqual(a.req("iam   bob    the \t builder  "), b"1 ok\n")
        self.assertEqual(a.req("me"), ("1 %s bob the builder\n" % A).encode())
        self.assertEqual(a.req("iam"), b"1 ok\n")
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())
        self.assertEqual(a.req("iam \xe9t\xe9"), b"1 ok\n")
        self.assertEqual(a.req("me"), ("1 %s \xe9t\xe9\n" % A).encode())
        self.assertEqual(a.req("iam   "), b"1 ok\n")
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())

    def test_who_order_and_filter(self):
        d = self.daemon(unix=True)
        a, c, e = self.client(d), self.client(d), self.client(d, "unix")
        x = self.client(d)
        A, C, E = a.addr(), c.addr(), "unix:1"
        self.assertEqual(x.multi("who"), [])
        self.assertEqual(a.req("iam alice"), OK)
        self.assertEqual(c.req("iam bob"), OK)
        self.assertEqual(e.req("iam alice"), OK)
        self.assertEqual(x.multi("who"), lines_of(A + ": alice", C + ": bob", E + ": alice"))
        self.assertEqual(x.multi("who alice"), lines_of(A + ": alice", E + ": alice"))
        self.assertEqual(x.multi("who bob"), lines_of(C + ": bob"))
        self.assertEqual(x.multi("who nobody"), [])
        # Registering again moves the connection to the end.
        self.assertEqual(a.req("iam alice"), OK)
        self.assertEqual(x.multi("who"), lines_of(C + ": bob", E + ": alice", A + ": alice"))
        self.assertEqual(x.multi("who alice"), lines_of(E + ": alice", A + ": alice"))
        self.assertEqual(c.req("iam carol"), OK)
        self.assertEqual(x.multi("who"), lines_of(E + ": alice", A + ": alice", C + ": carol"))
        self.assertEqual(x.multi("who bob"), [])
        # iam without a name unregisters.
        self.assertEqual(e.req("iam"), OK)
        self.assertEqual(x.multi("who"), lines_of(A + ": alice", C + ": carol"))
        self.assertEqual(e.req("me"), b"1 unix:1 unix:1\n")
        # Names are normalised like lock names.
        self.assertEqual(e.req("iam  big   \t name "), OK)
        self.assertEqual(x.multi("who big  name"), lines_of(E + ": big name"))
        # A closed connection leaves the registry.
        c.close()
        self.settle(x, connections=3)
        self.assertEqual(x.multi("who"), lines_of(A + ": alice", E + ": big name"))

    def test_registry_disabled(self):
        d = self.daemon(args=["--registry=false"])
        a, c = self.client(d), self.client(d)
        A = a.addr()
        self.assertEqual(a.req("iam alice"), DISABLED)
        self.assertEqual(a.req("iam"), DISABLED)
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())
        self.assertEqual(c.multi("who"), [DISABLED])
        self.assertEqual(c.multi("who alice"), [DISABLED])
        self.assertEqual(a.req("g lk"), g_ok("lk"))
        self.assertEqual(c.multi("d"), lines_of("lk: " + A))
        q = c.q()
        self.assertEqual((q["command_iam"], q["command_me"], q["command_who"]), (2, 1, 2))

    def test_registry_and_dump_disabled(self):
        d = self.daemon(args=["--registry=false", "--dump=false"])
        a = self.client(d)
        A = a.addr()
        self.assertEqual(a.req("iam x"), DISABLED)
        self.assertEqual(a.req("me"), ("1 %s %s\n" % (A, A)).encode())
        for req in ("who", "d", "sd", "dump", "dump shared"):
            self.assertEqual(a.multi(req), [DISABLED], req)
        self.assertEqual(a.req("g still"), g_ok("still"))
        self.assertEqual(a.req("sg works"), sg_ok(1, "works"))

    def test_same_name_several_connections_in_d(self):
        d = self.daemon()
        a, c, x = self.client(d), self.client(d), self.client(d)
        self.assertEqual(a.req("iam job"), OK)
        self.assertEqual(c.req("iam job"), OK)
        self.assertEqual(a.req("g l1"), g_ok("l1"))
        self.assertEqual(c.req("g l2"), g_ok("l2"))
        self.assertEqual(sorted(x.multi("d")), sorted(lines_of("l1: job", "l2: job")))
        self.assertEqual(x.multi("who job"), lines_of(a.addr() + ": job", c.addr() + ": job"))
        self.assertEqual(x.req("i nothing"), i_no("nothing"))
        self.assertEqual(x.req("si nothing"), si_no("nothing"))


if __name__ == "__main__":
    unittest.main()

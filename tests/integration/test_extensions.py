#!/usr/bin/python3
"""docs/PROTOCOL.md Part 2 over real sockets: w, sw, t, ra, grace, session,
resume, and --max-waiters."""
import time
import unittest
import urllib.request

from harness import (TIMEOUT, DaemonTestCase, free_port, g_ok, g_fail, i_yes, i_no, r_ok,
                     sg_ok, si_no)


def sg_fail(n):
    return b"0 Shared Lock Get Failure: " + n.encode() + b"\n"


class WaitCase(DaemonTestCase):
    """Daemons here also serve HTTP, so tests can see how many wait queued
    (glockd_waiters) instead of guessing from silence."""

    def daemon(self, args=()):
        self.ws_port = free_port()
        return super().daemon(argv=lambda d: ["--port", str(d.port), "--bind", "127.0.0.1",
                                              "--ws", str(self.ws_port)] + list(args))

    def metric(self, name):
        url = "http://127.0.0.1:%d/metrics" % self.ws_port
        text = urllib.request.urlopen(url, timeout=TIMEOUT).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        self.fail("no %s in /metrics" % name)

    def waiters(self):
        return self.metric("glockd_waiters")

    def settle_waiters(self, n):
        deadline = time.monotonic() + TIMEOUT
        while self.waiters() != n:
            if time.monotonic() > deadline:
                self.fail("glockd_waiters never reached %d" % n)
            time.sleep(0.01)


class Wait(WaitCase):
    def test_waiters_are_served_first_come_first_served(self):
        d = self.daemon()
        holder, w1, w2, probe = (self.client(d) for _ in range(4))
        self.assertEqual(holder.req("g job"), g_ok("job"))
        w1.send(b"w 60000 job\n")
        self.settle_waiters(1)
        w2.send(b"w 60000 job\n")
        self.settle_waiters(2)
        self.assertEqual(holder.req("r job"), r_ok("job"))
        self.assertEqual(w1.readline(), g_ok("job"))
        self.assertEqual(probe.req("d job"), b"job: " + w1.addr().encode() + b"\n")
        self.settle_waiters(1)
        w1.close()  # disconnect hands it on
        self.assertEqual(w2.readline(), g_ok("job"))

    def test_time_out_answers_failure_and_leaves_the_queue(self):
        d = self.daemon()
        holder, waiter = self.client(d), self.client(d)
        holder.req("g t")
        self.assertEqual(waiter.req("w 50 t"), g_fail("t"))
        self.assertEqual(waiter.req("w 0 t"), g_fail("t"))
        holder.req("r t")
        self.assertEqual(holder.req("i t"), i_no("t"))  # nobody was left queued

    def test_later_requests_wait_behind_a_blocked_one(self):
        d = self.daemon()
        holder, waiter = self.client(d), self.client(d)
        holder.req("g a")
        waiter.send(b"w 60000 a\ni a\ng b\n")
        self.settle_waiters(1)
        self.assertEqual(holder.req("i b"), i_no("b"))  # `g b` waits behind the w
        holder.req("r a")
        self.assertEqual(waiter.lines(3), [g_ok("a"), i_yes("a"), g_ok("b")])

    def test_waiter_that_disconnects_leaves_the_queue(self):
        d = self.daemon()
        holder, gone, next_ = self.client(d), self.client(d), self.client(d)
        holder.req("g x")
        gone.send(b"w 60000 x\n")
        self.settle_waiters(1)
        next_.send(b"w 60000 x\n")
        self.settle_waiters(2)
        gone.close()
        self.settle_waiters(1)
        holder.req("r x")
        self.assertEqual(next_.readline(), g_ok("x"))

    def test_bad_requests_get_an_answer(self):
        d = self.daemon()
        c = self.client(d)
        for req in ("w", "w x", "w -1 x", "w 2147483648 x", "sw 0 10 x", "sw a 10 x",
                    "sw 2 x y", "grace 600001", "grace"):
            self.assertTrue(c.req(req).startswith(b"0 Bad Request: "), req)

    def test_max_waiters_answers_time_out_at_once(self):
        d = self.daemon(args=["--max-waiters-per-lock", "1"])
        holder, w1, w2 = self.client(d), self.client(d), self.client(d)
        holder.req("g m")
        w1.send(b"w 60000 m\n")
        self.settle_waiters(1)
        self.assertEqual(w2.req("w 60000 m"), g_fail("m"))
        self.assertEqual(self.metric("glockd_waiter_refusals_total"), 1)
        self.wait_log(d, "refused a wait: --max-waiters (100000) or --max-waiters-per-lock (1)")


class GrantOrder(WaitCase):
    def test_a_time_out_answers_the_waiter_it_unblocks_first(self):
        """C's `sw` times out and so hands the semaphore to W; both have a
        `g X` queued behind their wait. The grant is answered as the time-out
        happens, so W's queue runs first and W gets X (as it always has)."""
        d = self.daemon()
        holder, c, w = (self.client(d) for _ in range(3))
        self.assertEqual(holder.req("sw 1 0 S"), sg_ok(1, "S"))
        c.send(b"sw 1 300 S\ng X\n")
        self.settle_waiters(1)
        w.send(b"sw 2 60000 S\ng X\n")
        self.settle_waiters(2)
        self.assertEqual(c.lines(2), [sg_fail("S"), g_fail("X")])
        self.assertEqual(w.lines(2), [sg_ok(2, "S"), g_ok("X")])


class Semaphore(WaitCase):
    def test_sw_admits_up_to_limit_then_queues(self):
        d = self.daemon()
        a, b, c = self.client(d), self.client(d), self.client(d)
        self.assertEqual(a.req("sw 2 1000 pool"), sg_ok(1, "pool"))
        self.assertEqual(b.req("sw 2 1000 pool"), sg_ok(2, "pool"))
        self.assertEqual(c.req("sw 2 50 pool"), sg_fail("pool"))
        c.send(b"sw 2 60000 pool\n")
        self.settle_waiters(1)
        a.req("sr pool")
        self.assertEqual(c.readline(), sg_ok(2, "pool"))


class TokensAndReleaseAll(DaemonTestCase):
    def token(self, c, name):
        line = c.req("t " + name)
        n, rest = line.split(b" ", 1)
        self.assertEqual(rest, b"Lock Token: " + name.encode() + b"\n")
        return int(n)

    def test_tokens_grow_also_across_restarts(self):
        d = self.daemon()
        a, b = self.client(d), self.client(d)
        self.assertEqual(a.req("t f"), b"0 Lock Token Failure: f\n")
        a.req("g f")
        t1 = self.token(a, "f")
        self.assertEqual(b.req("t f"), b"0 Lock Token Failure: f\n")
        a.req("r f")
        b.req("g f")
        t2 = self.token(b, "f")
        self.assertGreater(t2, t1)
        a.close()
        b.close()
        d.stop()
        d2 = self.daemon()
        c = self.client(d2)
        c.req("g f")
        self.assertGreater(self.token(c, "f"), t2)

    def test_release_all(self):
        d = self.daemon()
        a, b = self.client(d), self.client(d)
        a.req("g x")
        a.req("g y")
        a.req("sg s")
        self.assertEqual(a.req("ra"), b"1 Release All Success: 2 1\n")
        self.assertEqual(b.req("g x"), g_ok("x"))
        self.assertEqual(b.req("si s"), si_no("s"))
        self.assertEqual(b.q()["orphans"], 0)


class Sessions(DaemonTestCase):
    def test_grace_keeps_locks_until_resume(self):
        d = self.daemon()
        a, other = self.client(d), self.client(d)
        self.assertEqual(a.req("grace 60000"), b"1 Grace Set: 60000\n")
        token = a.req("session").split()[2].decode()
        self.assertEqual(len(token), 32)
        a.req("g kept")
        a.req("sg shared")
        a.close()
        self.settle(other, connections=1)
        self.assertEqual(other.req("g kept"), g_fail("kept"))  # still held
        self.assertEqual(other.req("resume nonsense"), b"0 Resume Failure\n")
        fresh = self.client(d)
        self.assertEqual(fresh.req("resume " + token), b"1 Resume Success: 1 1\n")
        self.assertEqual(fresh.req("r kept"), r_ok("kept"))
        self.assertEqual(fresh.req("resume " + token), b"0 Resume Failure\n")
        self.assertEqual(other.q()["orphans"], 0)

    def test_grace_expiry_orphans(self):
        d = self.daemon()
        a, other = self.client(d), self.client(d)
        a.req("grace 100")
        token = a.req("session").split()[2].decode()
        a.req("g brief")
        a.close()
        self.wait_answer(other, "i brief", i_no("brief"))
        self.assertEqual(other.q()["orphans"], 1)
        self.assertEqual(other.req("resume " + token), b"0 Resume Failure\n")


class WaitOrdering(DaemonTestCase):
    def test_requests_behind_a_granted_wait_keep_their_order(self):
        """A waiter with `r K` queued behind its `w K` is granted while its
        next `w K`/`r K` arrives: its answers must stay Get, Release, Get,
        Release. (Regression: the new pair overtook the queued `r` when both
        landed in one loop turn.) Background load makes such turns likely;
        the assertion holds whatever the timing."""
        import threading
        d = self.daemon()
        stop = threading.Event()

        def hammer():
            c = d.client("tcp")
            try:
                while not stop.is_set():
                    c.send(b"i busy\n" * 32)
                    c.lines(32)
            finally:
                c.close()

        load = [threading.Thread(target=hammer) for _ in range(3)]
        for t in load:
            t.start()
        try:
            a, b = self.client(d), self.client(d)
            for t in range(150):
                name = "k%d" % t
                want = [g_ok(name), r_ok(name), g_ok(name), r_ok(name)]
                self.assertEqual(a.req("g " + name), g_ok(name))
                b.send(b"w 60000 %s\nr %s\n" % (name.encode(), name.encode()))
                a.send(b"r " + name.encode() + b"\n")
                b.send(b"w 60000 %s\nr %s\n" % (name.encode(), name.encode()))
                self.assertEqual(a.readline(), r_ok(name))
                self.assertEqual(b.lines(4), want, "trial %d" % t)
        finally:
            stop.set()
            for t in load:
                t.join()


if __name__ == "__main__":
    unittest.main()

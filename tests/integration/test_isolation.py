#!/usr/bin/python3
"""No client can hurt another (issue: bounded memory, fair turns): each
bound refuses with docs/PROTOCOL.md's answer, is counted in /metrics and logged,
and the daemon keeps serving the others. Timing goals live in
bench/attack.py, not here."""
import os
import signal
import socket
import threading
import time
import unittest

from harness import (TIMEOUT, Client, g_fail, g_ok, i_no, r_ok, sg_ok)
from test_lifetime import MetricsCase
from test_websocket import OP_CLOSE, OP_TEXT, WsTestCase, frame

MEMORY_LIMIT = b"0 Bad Request: memory limit\n"


def sg_fail(n):
    return b"0 Shared Lock Get Failure: " + n.encode() + b"\n"


def read_lines(c, n):
    """n answer lines, read in bulk (Client.readline is for a few)."""
    chunks, count = [c.buf], c.buf.count(b"\n")
    c.buf = b""
    deadline = time.monotonic() + TIMEOUT
    while count < n:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            raise AssertionError("daemon closed after %d of %d lines" % (count, n))
        chunks.append(chunk)
        count += chunk.count(b"\n")
    data = b"".join(chunks)
    lines = data.split(b"\n")
    c.buf = b"\n".join(lines[n:])
    return [l + b"\n" for l in lines[:n]]


def slow_reader(d):
    """A TCP client with a small receive buffer, so the answers it leaves
    unread pile up in the daemon rather than in the kernel."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", d.port))
    return Client(s, "tcp")


BIG = "n" * 4000  # lock names this long fill a small budget quickly


def fill_budget(test, c):
    """Takes big-named locks on c until the budget refuses one; returns the
    names held."""
    held = []
    for k in range(10000):
        name = "%s%d" % (BIG, k)
        got = c.req("g " + name)
        if got == g_fail(name):
            return held
        test.assertEqual(got, g_ok(name))
        held.append(name)
    test.fail("10,000 locks of 4 KB never reached the budget")


class LocksPerConnection(MetricsCase):
    def test_past_the_bound_lock_requests_fail_and_held_ones_still_succeed(self):
        d = self.daemon(["--max-locks-per-connection", "3"])
        a, other = self.client(d), self.client(d)
        for name in ("x1", "x2"):
            self.assertEqual(a.req("g " + name), g_ok(name))
        self.assertEqual(a.req("sg s1"), sg_ok(1, "s1"))
        # Three held: one more of any kind fails with its own failure line.
        self.assertEqual(a.req("g x4"), g_fail("x4"))
        self.assertEqual(a.req("sg s2"), sg_fail("s2"))
        self.assertEqual(a.req("w 0 x5"), g_fail("x5"))
        self.assertEqual(a.req("sw 5 0 s3"), sg_fail("s3"))
        # Taking again what it holds grows nothing: still a success.
        self.assertEqual(a.req("g x1"), g_ok("x1"))
        self.assertEqual(a.req("sg s1"), sg_ok(1, "s1"))
        self.assertEqual(a.req("w 0 x2"), g_ok("x2"))
        # Nothing was taken by the refusals; others are not bounded by it.
        self.assertEqual(other.req("i x4"), i_no("x4"))
        self.assertEqual(other.req("g x4"), g_ok("x4"))
        self.assertEqual(self.metric("glockd_lock_limit_refusals_total"), 4)
        self.wait_log(d, "--max-locks-per-connection (3)")
        # Releasing one makes room again.
        self.assertEqual(a.req("r x2"), r_ok("x2"))
        self.assertEqual(a.req("g x6"), g_ok("x6"))
        q = other.q()
        self.assertEqual((q["locks"], q["shared_locks"]), (3, 1))


class MemoryBudget(MetricsCase):
    def test_at_the_budget_growth_is_refused_with_protocol_answers(self):
        d = self.daemon(["--max-memory", "1MiB"])
        self.wait_log(d, "memory budget: 1048576 bytes (--max-memory)")
        a, b = self.client(d), self.client(d)
        held = fill_budget(self, a)
        self.assertGreater(len(held), 10)
        self.assertEqual(self.metric("glockd_memory_budget_bytes"), 1048576)
        self.assertGreaterEqual(self.metric("glockd_memory_used_bytes"), 1048576)
        # Every request that would grow it gets its failure line, on any
        # connection; nothing else changes.
        self.assertEqual(b.req("g other"), g_fail("other"))
        self.assertEqual(b.req("sg other"), sg_fail("other"))
        self.assertEqual(b.req("w 1000 other"), g_fail("other"))
        self.assertEqual(b.req("iam someone"), MEMORY_LIMIT)
        self.assertEqual(b.req("grace 1000"), MEMORY_LIMIT)
        self.assertEqual(b.req("session"), MEMORY_LIMIT)
        # What does not grow it is served as usual.
        self.assertEqual(b.req("i other"), i_no("other"))
        self.assertEqual(b.req("g " + held[0]), g_fail(held[0]))
        self.assertEqual(a.req("g " + held[0]), g_ok(held[0]))
        self.assertEqual(b.q()["locks"], len(held))
        self.assertGreaterEqual(self.metric("glockd_memory_refusals_total"), 7)
        self.wait_log(d, "refused a request: memory budget reached")
        # Room again once locks go.
        for name in held[: len(held) // 2]:
            self.assertEqual(a.req("r " + name), r_ok(name))
        self.assertEqual(b.req("g other"), g_ok("other"))
        self.assertEqual(b.req("iam someone"), b"1 ok\n")

    def test_inspections_past_the_budget_take_turns(self):
        # A dump is as big as the table; past the budget one is made at a
        # time, and the next waits (answers stay in order) until the first
        # has been read. (12 MiB: a dump bigger than the kernel's socket
        # buffers, so that it stays in the daemon until b reads it.)
        d = self.daemon(["--max-memory", "12MiB"])
        a, b, c = self.client(d), self.client(d), self.client(d)
        held = fill_budget(self, a)
        b = slow_reader(d)
        self.addCleanup(b.close)
        b.send(b"d\n")  # not read yet: about as big as the table, unsent
        self.settle_metric("glockd_unsent_bytes", 1 << 20, at_least=True)
        c.send(b"d\ni after\n")
        # c's dump waits for b's to be read; b, which holds its answer past
        # its share of the full budget, is paused too.
        self.settle_metric("glockd_memory_waiting_connections", 2)
        a.send(b"i probe\n")  # others are not held up by it
        self.assertEqual(a.readline(), i_no("probe"))
        got_b = read_lines(b, len(held))
        self.assertEqual(sorted(l.split(b": ")[0] for l in got_b), sorted(n.encode() for n in held))
        got_c = read_lines(c, len(held) + 1)
        self.assertEqual(got_c[-1], i_no("after"))
        self.settle_metric("glockd_memory_waiting_connections", 0)

    def test_a_reader_that_holds_much_is_paused_and_others_are_served(self):
        d = self.daemon(["--max-memory", "1MiB", "--max-output-per-connection", "256KiB"])
        a, probe = self.client(d), self.client(d)
        fill_budget(self, a)
        hog = self.client(d)
        hog.sock.setblocking(False)
        # Requests whose answers it never reads:
        data = b"q\n" * 200000
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        while self.metric("glockd_memory_pauses_total") + self.metric("glockd_output_pauses_total") < 1:
            try:
                sent += hog.sock.send(data[sent % len(data):])
            except BlockingIOError:
                time.sleep(0.01)
            self.assertLess(time.monotonic(), deadline, "never paused")
        self.assertEqual(probe.req("i probe"), i_no("probe"))
        self.assertEqual(self.metric("glockd_paused_connections"), 1)
        hog.reset()
        self.settle_metric("glockd_paused_connections", 0)
        self.assertEqual(probe.req("i probe"), i_no("probe"))


class AtTheBudget(MetricsCase):
    """What a hostile review found at a full budget, each once a stall."""

    def test_an_empty_inspection_answer_does_not_keep_the_turn(self):
        d = self.daemon(["--max-memory", "1MiB"])
        a, b, c = self.client(d), self.client(d), self.client(d)
        fill_budget(self, c)
        a.send(b"d nosuch\n")  # made past the budget, and an empty answer
        self.settle_metric('glockd_requests_total{command="d"}', 1)
        b.send(b"d nosuch\ni b-after\n")  # the next inspection is not held up
        self.assertEqual(b.readline(), i_no("b-after"))

    def test_a_paused_client_that_read_its_answers_is_read_again(self):
        # It pipelines locks with big names while reading every answer; its
        # own locks fill the budget and it is paused. Once it holds nothing
        # unread it must be read again: here, to release a lock.
        d = self.daemon(["--max-memory", "4MiB"])
        c = self.client(d)
        pad = "x" * 4000
        got = []
        reader = threading.Thread(target=lambda: got.extend(read_lines(c, 2000)))
        reader.start()
        for start in range(0, 2000, 100):
            c.send(b"".join(b"g f%d_%s\n" % (k, pad.encode()) for k in range(start, start + 100)))
        reader.join(TIMEOUT)
        self.assertEqual(len(got), 2000)
        self.assertIn(g_fail("f1999_" + pad), got)  # the budget refused some
        self.assertGreaterEqual(self.metric("glockd_memory_pauses_total"), 1)
        self.assertEqual(c.req("r f0_" + pad), r_ok("f0_" + pad))

    def test_a_blocked_connection_queues_only_its_share(self):
        # Behind a wait reading must go on, so past its share of a full
        # budget the connection is closed (its locks released), not paused.
        d = self.daemon(["--max-memory", "1MiB"])
        holder, waiter, filler = self.client(d), self.client(d), self.client(d)
        self.assertEqual(holder.req("g X"), g_ok("X"))
        self.assertEqual(waiter.req("g mine"), g_ok("mine"))
        waiter.send(b"w 600000 X\n")
        self.settle_metric("glockd_waiters", 1)
        fill_budget(self, filler)
        waiter.sock.settimeout(TIMEOUT)
        try:
            waiter.sock.sendall(b"i y\n" * 50000)  # 200 KB behind the wait
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still writing: fine too
        self.settle_metric("glockd_queue_overflows_total", 1)
        self.wait_log(d, "queued behind a wait at the memory budget")
        self.assertEqual(holder.req("i mine"), i_no("mine"))


class HalfClose(WsTestCase):
    def test_every_request_before_a_half_close_is_answered(self):
        # `printf ... | nc -N`: far more than a turn serves, then FIN.
        d = self.ws_daemon()
        c = self.client(d)
        n = 5000
        c.send(b"".join(b"i k%d\n" % k for k in range(n)))
        c.sock.shutdown(socket.SHUT_WR)
        got = read_lines(c, n)
        self.assertEqual(got[-1], i_no("k%d" % (n - 1)))
        self.assertEqual(c.expect_eof(), b"")

    def test_every_request_before_a_close_frame_is_answered_first(self):
        d = self.ws_daemon()
        w = self.raw(d)
        n = 500
        w.send(frame(OP_TEXT, b"".join(b"i k%d\n" % k for k in range(n))) +
               frame(OP_CLOSE, (1000).to_bytes(2, "big")))
        for k in range(n):
            _, op, payload = w.frame()
            self.assertEqual((op, payload), (OP_TEXT, i_no("k%d" % k)))
        _, op, payload = w.frame()
        self.assertEqual(op, OP_CLOSE)


class OutputBound(MetricsCase):
    def test_checked_per_request_and_answers_stay_in_order(self):
        # 200 dumps of ~30 KB from a client that does not read: the answers
        # made stay within the bound plus one answer, and all arrive, in
        # order, once it reads.
        d = self.daemon(["--max-output-per-connection", "64KiB"])
        owner = self.client(d)
        reader = slow_reader(d)
        self.addCleanup(reader.close)
        names = ["lock-number-%05d" % k for k in range(1000)]
        owner.send(b"".join(b"g %s\n" % n.encode() for n in names))
        read_lines(owner, len(names))
        reader.send(b"d\n" * 200 + b"i end\n")
        self.settle_metric("glockd_output_pauses_total", 1, at_least=True)
        self.assertLessEqual(self.metric("glockd_unsent_bytes"), 64 * 1024 + 40 * 1000)
        got = read_lines(reader, 200 * 1000 + 1)
        self.assertEqual(got[-1], i_no("end"))
        self.assertEqual(len(set(got[:-1])), 1000)


class FairTurns(MetricsCase):
    def test_a_big_batch_waits_its_turn_and_is_answered_in_order(self):
        d = self.daemon()
        a, probe = self.client(d), self.client(d)
        n = 200000
        a.send(b"".join(b"i k%d\n" % k for k in range(n)))
        got = read_lines(a, n)
        self.assertEqual(got[0], i_no("k0"))
        self.assertEqual(got[-1], i_no("k%d" % (n - 1)))
        self.assertEqual(got[n // 2], i_no("k%d" % (n // 2)))
        self.assertGreater(self.metric("glockd_turn_deferrals_total"), 0)
        self.assertEqual(probe.req("i probe"), i_no("probe"))

    def test_sigterm_during_a_flood_of_q_is_acted_on(self):
        d = self.daemon()
        stop = threading.Event()
        flooders = [self.client(d) for _ in range(4)]

        def flood(c):
            c.sock.settimeout(TIMEOUT)
            try:
                while not stop.is_set():
                    c.sock.sendall(b"q\n" * 64)
                    c.sock.recv(1 << 16)
            except OSError:
                pass  # the daemon went away: that is the point

        threads = [threading.Thread(target=flood, args=(c,)) for c in flooders]
        for t in threads:
            t.start()
        try:
            self.settle_metric("glockd_requests_total{command=\"q\"}", 10000, at_least=True)
            d.stop(signal.SIGTERM)  # exits 0 within the harness's timeout
        finally:
            stop.set()
            for t in threads:
                t.join(TIMEOUT)


class WebsocketMessageTimeout(WsTestCase):
    def test_a_message_left_unfinished_is_closed_with_1008(self):
        d = self.ws_daemon(ws_args=["--ws-message-timeout", "1"])
        slow, steady = self.raw(d), self.raw(d)
        # A 100-byte text frame of which 10 bytes ever come.
        slow.send(frame(OP_TEXT, b"i x\n" * 25)[:16])
        # A client whose messages each complete is never closed, however
        # long it stays: one message every 0.3 s, across two timeouts.
        for k in range(7):
            self.assertEqual(steady.req("i steady%d" % k), i_no("steady%d" % k))
            time.sleep(0.3)
        _, op, payload = slow.frame()
        self.assertEqual(op, OP_CLOSE)
        self.assertEqual(int.from_bytes(payload[:2], "big"), 1008)
        self.wait_log_line(d, "--ws-message-timeout")
        self.assertEqual(steady.req("i still"), i_no("still"))


if __name__ == "__main__":
    unittest.main()

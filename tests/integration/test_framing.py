# Section 0 framing: whitespace rules, blank lines, unknown commands, opaque
# names, pipelining, split requests and overlong lines.

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DaemonTestCase, exchange, g_ok, g_fail, r_ok, i_yes, i_no,  # noqa: E402
                     sg_ok, si_yes, sr_ok, r_fail)


class Whitespace(DaemonTestCase):

    def test_crlf(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b"g foo\r\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: foo\n")
        c.send(b"i foo\r\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: foo\n")
        c.send(b"sg foo\r\n")
        self.assertEqual(c.readline(), b"1 Shared Lock Get Success: foo\n")
        a.send(b"r foo\r\n")
        self.assertEqual(a.readline(), b"1 Lock Release Success: foo\n")

    def test_leading_space_go_client(self):
        # A widely used Go client sends " g  foo\n".
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b" g  foo\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: foo\n")
        c.send(b" i  foo\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: foo\n")
        c.send(b" g  foo\n")
        self.assertEqual(c.readline(), b"0 Lock Get Failure: foo\n")
        a.send(b" r  foo\n")
        self.assertEqual(a.readline(), b"1 Lock Release Success: foo\n")

    def test_runs_of_whitespace_in_name_collapse(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b"g   my    lock\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: my lock\n")
        c.send(b"i my lock\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: my lock\n")
        c.send(b"i my\tlock\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: my lock\n")
        c.send(b"g  \t my \t\t lock \t \r\n")
        self.assertEqual(c.readline(), b"0 Lock Get Failure: my lock\n")
        c.send(b"i mylock\n")
        self.assertEqual(c.readline(), b"0 Lock Not Locked: mylock\n")
        a.send(b"r my      lock   \n")
        self.assertEqual(a.readline(), b"1 Lock Release Success: my lock\n")

    def test_tabs_and_other_ascii_whitespace(self):
        d = self.daemon()
        a = self.client(d)
        a.send(b"\tg a\tb\t\tc\t\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: a b c\n")
        a.send(b"  \t i \t a b  c \t \r\n")
        self.assertEqual(a.readline(), b"1 Lock Is Locked: a b c\n")
        # \v, \f and \r inside the argument are whitespace too.
        a.send(b"g x\x0by\x0cz\rw\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: x y z w\n")
        a.send(b"i x y z w\n")
        self.assertEqual(a.readline(), b"1 Lock Is Locked: x y z w\n")
        a.send(b"sg \t s  t \n")
        self.assertEqual(a.readline(), b"1 Shared Lock Get Success: s t\n")

    def test_tab_after_command_is_not_a_separator(self):
        # "The command is the text before the first space": "g\tfoo" is the
        # (unknown) command "g\tfoo", as in the original glockd.
        d = self.daemon()
        a = self.client(d)
        before = a.q()["invalid_commands"]
        a.assert_silent(b"g\tfoo\n")
        self.assertEqual(a.q()["invalid_commands"], before + 1)
        self.assertEqual(a.req("i foo"), i_no("foo"))

    def test_empty_name(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b"g\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: \n")
        c.send(b"i\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: \n")
        c.send(b"i    \n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: \n")
        c.send(b"g \t \n")
        self.assertEqual(c.readline(), b"0 Lock Get Failure: \n")
        c.send(b"r\n")
        self.assertEqual(c.readline(), b"0 Lock Release Failure: \n")
        c.send(b"sg\n")
        self.assertEqual(c.readline(), b"1 Shared Lock Get Success: \n")
        a.send(b"si\n")
        self.assertEqual(a.readline(), b"1 Shared Lock Is Locked: \n")
        a.send(b"r\r\n")
        self.assertEqual(a.readline(), b"1 Lock Release Success: \n")
        c.send(b"i\n")
        self.assertEqual(c.readline(), b"0 Lock Not Locked: \n")
        c.send(b"sr\n")
        self.assertEqual(c.readline(), b"1 Shared Lock Release Success: \n")
        c.send(b"si\n")
        self.assertEqual(c.readline(), b"0 Shared Lock Not Locked: \n")

    def test_blank_lines_ignored_without_answer_or_stat(self):
        d = self.daemon()
        a = self.client(d)
        q0 = a.q()
        a.assert_silent(b"\n")
        a.assert_silent(b"\r\n")
        a.assert_silent(b"   \n")
        a.assert_silent(b" \t \r\n\n\n\t\n")
        q1 = a.q()
        self.assertEqual(q1["invalid_commands"], q0["invalid_commands"])
        # Only the sentinel i's and the q were counted.
        for k in q0:
            if k.startswith("command_") and k not in ("command_i", "command_q"):
                self.assertEqual(q1[k], q0[k], k)
        self.assertEqual(q1["command_i"], q0["command_i"] + 4)
        self.assertEqual(q1["command_q"], q0["command_q"] + 1)
        # Blank lines between pipelined requests don't disturb the order.
        a.send(b"\ng bl\n\n\r\n  \ni bl\n\n")
        self.assertEqual(a.lines(2), [g_ok("bl"), i_yes("bl")])


class OpaqueNames(DaemonTestCase):

    def test_non_utf8_bytes(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        for name in (b"caf\xc3\xa9", b"\xff\xfe\x80", b"a:b]c[d", b"\xe2\x82\xac 100"):
            a.send(b"g " + name + b"\n")
            self.assertEqual(a.readline(), b"1 Lock Get Success: " + name + b"\n")
            c.send(b"i " + name + b"\n")
            self.assertEqual(c.readline(), b"1 Lock Is Locked: " + name + b"\n")
            c.send(b"g " + name + b"\n")
            self.assertEqual(c.readline(), b"0 Lock Get Failure: " + name + b"\n")
        c.send(b"i \xff\xfe\n")
        self.assertEqual(c.readline(), b"0 Lock Not Locked: \xff\xfe\n")

    def test_nul_byte_in_name(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        a.send(b"g a\x00b\n")
        self.assertEqual(a.readline(), b"1 Lock Get Success: a\x00b\n")
        c.send(b"i a\n")
        self.assertEqual(c.readline(), b"0 Lock Not Locked: a\n")
        c.send(b"g a\n")
        self.assertEqual(c.readline(), b"1 Lock Get Success: a\n")
        c.send(b"i a\x00b\n")
        self.assertEqual(c.readline(), b"1 Lock Is Locked: a\x00b\n")

    def test_case_sensitive_names(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g Foo"), g_ok("Foo"))
        self.assertEqual(c.req("g foo"), g_ok("foo"))
        self.assertEqual(c.req("g FOO"), g_ok("FOO"))
        self.assertEqual(c.req("g Foo"), g_fail("Foo"))


class UnknownCommands(DaemonTestCase):

    def test_no_answer_and_counted(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        q0 = c.q()
        self.assertEqual(q0["invalid_commands"], 0)
        bad = [b"bogus\n", b"bogus foo\n", b"G foo\n", b"gg foo\n", b"stats\n",
               b"get foo\n", b"Q\n", b"quit\n", b"\x00\n", b"g,foo\n", b"-g foo\n",
               b"\xff\xfe\n", b"DUMP\n", b"help\n"]
        for line in bad:
            a.assert_silent(line)
        q1 = c.q()
        self.assertEqual(q1["invalid_commands"], len(bad))
        # Unknown commands don't bump any command counter.
        for k in q0:
            if k.startswith("command_") and k not in ("command_i", "command_q"):
                self.assertEqual(q1[k], 0, k)
        self.assertEqual(q1["command_i"], len(bad))  # the sentinels only
        # Nothing was locked by "G foo", "get foo" etc.
        self.assertEqual(c.req("i foo"), i_no("foo"))
        self.assertEqual(q1["locks"], 0)

    def test_unknown_between_pipelined_requests(self):
        d = self.daemon()
        a = self.client(d)
        a.send(b"g p1\nnope p1\ni p1\nxyz\nr p1\n")
        self.assertEqual(a.lines(3), [g_ok("p1"), i_yes("p1"), r_ok("p1")])
        a.assert_silent(b"")
        self.assertEqual(a.q()["invalid_commands"], 2)


class Pipelining(DaemonTestCase):

    def test_1000_requests_in_one_send(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(c.req("g held"), g_ok("held"))
        reqs, want = [], []
        for k in range(125):
            n = "p%d" % k
            reqs += ["g " + n, "i " + n, "g held", "sg s" + n, "si s" + n,
                     "r " + n, "i " + n, "r " + n]
            want += [g_ok(n), i_yes(n), g_fail("held"), sg_ok(1, "s" + n),
                     si_yes(1, "s" + n), r_ok(n), i_no(n), r_fail(n)]
        self.assertEqual(len(reqs), 1000)
        data = ("\n".join(reqs) + "\n").encode()
        expected = b"".join(want)
        a.send(data)
        got = a.lines(1000)
        self.assertEqual(b"".join(got), expected)
        a.assert_silent(b"")

    def test_large_pipeline_with_backpressure(self):
        # 60000 requests sent while reading: the daemon has to cope with
        # partial sends and a full receive window.
        d = self.daemon()
        a = self.client(d)
        reqs, want = [], []
        for k in range(30000):
            n = b"n%d" % ((k // 2) % 97)
            if k % 2 == 0:
                reqs.append(b"g " + n + b"\n")
                want.append(g_ok(n))
            else:
                reqs.append(b"r " + n + b"\n")
                want.append(r_ok(n))
        reqs = reqs * 2
        want = want * 2
        expected = b"".join(want)
        got = exchange(a.sock, b"".join(reqs), len(expected))
        self.assertEqual(len(got), len(expected))
        self.assertTrue(got == expected, "answers differ from the expected sequence")
        a.assert_silent(b"")

    def test_multiline_answers_stay_in_order(self):
        d = self.daemon()
        a = self.client(d)
        a.send(b"g m1\nd m1\ni m1\nq\nr m1\n")
        got = a.lines(1 + 1 + 1 + 19 + 1)
        self.assertEqual(got[0], g_ok("m1"))
        self.assertEqual(got[1], b"m1: " + a.addr().encode() + b"\n")
        self.assertEqual(got[2], i_yes("m1"))
        self.assertTrue(got[3].startswith(b"command_d: "), got[3])
        self.assertTrue(got[21].startswith(b"shared_orphans: "), got[21])
        self.assertEqual(got[22], r_ok("m1"))

    def test_line_lengths_around_buffer_sizes(self):
        # Lines that straddle the daemon's receive buffers (typically 4 KiB)
        # in every position, all under the default 8 KiB limit.
        d = self.daemon()
        a = self.client(d)
        data, want = b"", []
        for size in (4093, 4094, 4095, 4096, 4097, 4098, 2047, 2048, 2049, 8190, 8191, 4, 5):
            name = (b"%d-" % size + b"q" * size)[:size - 2]
            line = b"g " + name
            self.assertEqual(len(line), size)
            data += line + b"\n"
            want.append(g_ok(name))
        data = data * 3
        want = want + [w for w in want] * 2
        a.send(data)
        self.assertEqual(a.lines(len(want)), want)
        a.assert_silent(b"")
        self.assertEqual(a.q()["invalid_commands"], 0)

    def test_client_not_reading_does_not_block_others(self):
        d = self.daemon()
        hog, other = self.client(d), self.client(d)
        self.assertEqual(hog.req("g hogged"), g_ok("hogged"))
        # Send until the kernel buffers are full: the hog never reads.
        hog.sock.setblocking(False)
        chunk = b"i hogged\n" * 4096
        total = 0
        try:
            while total < (64 << 20):
                total += hog.sock.send(chunk)
        except BlockingIOError:
            pass
        self.assertGreater(total, 0)
        # Others are still served.
        self.assertEqual(other.req("i hogged"), i_yes("hogged"))
        self.assertEqual(other.req("g free-one"), g_ok("free-one"))
        hog.reset()
        self.wait_answer(other, "i hogged", i_no("hogged"))

    def test_one_byte_at_a_time(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        data = b" g  split lock \r\ni split lock\nsg s1\nbogus\n\nr split lock\n"
        for k in range(len(data)):
            a.send(data[k:k + 1])
            time.sleep(0.002)  # encourage separate reads; not asserted
        self.assertEqual(a.lines(4), [g_ok("split lock"), i_yes("split lock"),
                                      sg_ok(1, "s1"), r_ok("split lock")])
        a.assert_silent(b"")
        self.assertEqual(c.q()["invalid_commands"], 1)

    def test_request_split_across_sends(self):
        d = self.daemon()
        a = self.client(d)
        parts = [b"g fo", b"o\ni f", b"oo\nsg", b" bar\nsi bar", b"\n", b"r foo\nsr bar\ni foo\n"]
        for p in parts:
            a.send(p)
            time.sleep(0.01)
        self.assertEqual(a.lines(7), [g_ok("foo"), i_yes("foo"), sg_ok(1, "bar"),
                                      si_yes(1, "bar"), r_ok("foo"), sr_ok("bar"),
                                      i_no("foo")])


class OverlongLines(DaemonTestCase):

    def test_small_limit(self):
        limit = 64
        d = self.daemon(args=["--max-line", str(limit)])
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g keep"), g_ok("keep"))
        # Just under the limit: works (limit-1 bytes + "\n").
        name = "n" * (limit - 1 - 2)
        line = "g " + name
        self.assertEqual(len(line), limit - 1)
        self.assertEqual(a.req(line), g_ok(name))
        q0 = c.q()
        # Over the limit: no answer, counted, connection and locks kept.
        a.assert_silent(b"g " + b"x" * (limit - 1) + b"\n")
        a.assert_silent(b"g " + b"y" * 10000 + b"\n")
        q1 = c.q()
        self.assertEqual(q1["invalid_commands"], q0["invalid_commands"] + 2)
        self.assertEqual(q1["command_g"], q0["command_g"])
        self.assertEqual(c.req("i keep"), i_yes("keep"))
        self.assertEqual(c.req("g keep"), g_fail("keep"))
        self.assertEqual(a.req("r keep"), r_ok("keep"))
        self.assertEqual(a.req("i " + name), i_yes(name))

    def test_overlong_followed_by_request_in_same_send(self):
        d = self.daemon(args=["--max-line", "64"])
        a = self.client(d)
        a.send(b"g " + b"z" * 200 + b"\ni after\ng after\n")
        self.assertEqual(a.lines(2), [i_no("after"), g_ok("after")])
        self.assertEqual(a.q()["invalid_commands"], 1)

    def test_overlong_line_arriving_in_pieces(self):
        d = self.daemon(args=["--max-line", "64"])
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("g mine"), g_ok("mine"))
        a.send(b"g " + b"a" * 40)
        time.sleep(0.02)
        a.send(b"b" * 40)
        time.sleep(0.02)
        a.send(b"c" * 5000)
        time.sleep(0.02)
        a.send(b"d" * 10 + b"\ni mine\n")
        self.assertEqual(a.readline(), i_yes("mine"))
        a.assert_silent(b"")
        q = c.q()
        self.assertEqual(q["invalid_commands"], 1)
        self.assertEqual(q["locks"], 1)
        self.assertEqual(c.req("i mine"), i_yes("mine"))

    def test_default_limit_8k(self):
        d = self.daemon()
        a, c = self.client(d), self.client(d)
        self.assertEqual(a.req("sg held"), sg_ok(1, "held"))
        name = "k" * (8192 - 1 - 2)
        self.assertEqual(a.req("g " + name), g_ok(name))
        self.assertEqual(c.req("i " + name), i_yes(name))
        a.assert_silent(b"g " + b"v" * 8191 + b"\n")
        a.assert_silent(b"i " + b"w" * (1 << 20) + b"\n")   # 1 MiB line
        q = c.q()
        self.assertEqual(q["invalid_commands"], 2)
        self.assertEqual(q["locks"], 1)
        self.assertEqual(c.req("si held"), si_yes(1, "held"))
        self.assertEqual(a.req("r " + name), r_ok(name))

    def test_logged_as_warning_rate_limited(self):
        d = self.daemon(args=["--max-line", "64"])
        a = self.client(d)
        before = len(d.stderr().splitlines())
        a.send((b"g " + b"o" * 100 + b"\n") * 500)
        a.assert_silent(b"")
        deadline = time.monotonic() + 10
        while "warn" not in d.stderr().lower():
            self.assertLess(time.monotonic(), deadline, "no warning logged for overlong lines")
            time.sleep(0.02)
        d.stop()
        added = d.stderr().splitlines()[before:]
        # 500 overlong lines in a burst: a handful of log lines, not 500.
        self.assertLess(len(added), 50, "\n".join(added[:60]))

    def test_many_overlong_lines_pipelined(self):
        d = self.daemon(args=["--max-line", "100"])
        a = self.client(d)
        data = b""
        want = []
        for k in range(50):
            data += b"g " + b"L" * (150 + k) + b"\n"
            data += b"g ok%d\n" % k
            want.append(g_ok("ok%d" % k))
        a.send(data)
        self.assertEqual(a.lines(50), want)
        a.assert_silent(b"")
        self.assertEqual(a.q()["invalid_commands"], 50)


if __name__ == "__main__":
    unittest.main()

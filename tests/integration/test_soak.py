#!/usr/bin/python3
"""Model-based soak (issue 8, "How it is tested"): many connections over TCP
and a unix socket do random g/r/i/sg/sr/si/w/sw/t/ra/grace/session/resume/
iam/me, close cleanly or reset, and reconnect, over a small name space so
that conflicts and queues are common. A plain Python model of docs/PROTOCOL.md
(class Model) says exactly which answers are due on which connections; each
is read and compared byte for byte. After every step a probe connection
checks d, sd, dump, dump shared and who against the model, so a lock held by
a connection that is gone (past its grace) is caught at the step it happens.

Deterministic by construction: one action per step, single-threaded; waits
use MS 0 (answered at once) or a long MS that only a grant or the waiter's
own close can end; grace is 0 or longer than the test. What the daemon does
asynchronously (tearing a closed connection down, queueing a wait) is
polled for with a bounded deadline before the next step.

Where docs/PROTOCOL.md leaves a detail open, the model follows the daemon's
documented design (src/lock_table.hpp, src/protocol_sessions.cpp):
- resume moves the session token and the grace (the larger of the two) to
  the resumer, so a resumer that drops is kept and resumable in its turn;
  the resumer's own earlier token dies;
- resumed holds keep their tokens and their places among a shared lock's
  holders; a shared lock both held is kept once, in the resumer's place;
- a connection with grace but no locks is not kept (its token dies);
- grants that one event gives (a close or ra handing several locks on)
  have tokens in no particular order among themselves.
Every sw on a name uses that name's one LIMIT, so FIFO among waiters with
different limits (where readings could differ) never arises.

GLOCKD_SOAK_SEED picks the seed, GLOCKD_SOAK_STEPS the number of steps;
a failure names the seed, the step and the last requests and answers.
GLOCKD_SOAK_STATS=1 prints what the run covered.
"""
import bisect
import collections
import os
import random
import re
import select
import sys
import time
import unittest
import urllib.request

from harness import (TIMEOUT, DaemonTestCase, Q_KEYS, free_port, tail, g_ok, g_fail, r_ok,
                     r_fail, i_yes, i_no, sg_ok, sr_ok, sr_fail, si_yes, si_no, OK)

SEED = int(os.environ.get("GLOCKD_SOAK_SEED", "8"))
# About 10 s in a release build, 20-30 s under ASan.
STEPS = int(os.environ.get("GLOCKD_SOAK_STEPS", "20000"))

EXCLUSIVE = ["x0", "x1", "x2", "x3", "x4", "lock 5"]  # "lock 5" is sent with odd spacing
SHARED_LIMIT = {"s0": 1, "s1": 2, "s2": 2, "s3": 3}    # the LIMIT every sw on it uses
LONG_MS = 600000   # a w/sw that can only end by a grant or its own close
GRACE_MS = 600000  # longer than the test: kept sessions never expire during it
MIN_LIVE, MAX_LIVE = 12, 20
MAX_DETACHED = 4   # past this, resumes become much more likely
KEEP_AT_SHUTDOWN = 5

PART1 = ("d", "dump", "g", "i", "iam", "me", "q", "r", "sd", "sg", "si", "sr", "who")
PART2 = ("t", "ra", "w", "sw", "grace", "session", "resume")
MAX_TOKEN = 2 ** 53


def sg_fail(name):
    return b"0 Shared Lock Get Failure: " + name.encode() + b"\n"


def t_fail(name):
    return b"0 Lock Token Failure: " + name.encode() + b"\n"


RESUME_FAIL = b"0 Resume Failure\n"


class SoakFailure(AssertionError):
    pass


# --------------------------------------------------------------------------
# The reference model


class Session:
    """One connection as the model sees it: open, detached (dropped, its
    locks kept by its grace), or gone."""

    def __init__(self, cid, addr):
        self.cid = cid
        self.addr = addr
        self.state = "open"
        self.name = None      # registered with iam
        self.grace = 0
        self.token = None     # session token, once the daemon has told it
        self.waiting = None   # (kind, name) of its queued w/sw
        self.ex = set()
        self.sh = set()

    def holds(self):
        return len(self.ex) + len(self.sh)


class Model:
    """docs/PROTOCOL.md Part 1 and 2 semantics: expected answers, and the grants
    due to other connections (self.grants) after each call."""

    def __init__(self):
        self.sessions = {}
        self.ex = {}          # name -> holder cid
        # name -> the event (request or close) that gave the hold: tokens
        # grow from event to event; one event's grants (a close or ra that
        # hands several locks on) are not ordered among themselves.
        self.ex_event = {}
        self.sh = {}          # name -> holder cids in the order they took it
        self.queues = collections.defaultdict(list)  # (kind, name) -> [(cid, limit)]
        self.event = 0
        self.registry = []    # cids in registration order (who)
        self.tokens = {}      # session token -> cid whose locks it names
        self.dead_tokens = []
        self.grants = []      # (cid, answer line) due since take_grants()
        self.commands = collections.Counter()
        self.invalid = 0
        self.orphans = 0
        self.shared_orphans = 0
        self.covered = collections.Counter()  # what happened, for GLOCKD_SOAK_STATS

    # -- bookkeeping

    def open(self, cid, addr):
        self.sessions[cid] = Session(cid, addr)

    def count(self, line):
        word = line.strip().split(" ", 1)[0]
        if not word:
            return
        if word in PART1:
            self.commands[word] += 1
        elif word not in PART2:
            self.invalid += 1

    def take_grants(self):
        due, self.grants = self.grants, []
        return due

    def open_count(self):
        return sum(1 for s in self.sessions.values() if s.state == "open")

    def detached(self):
        return [s for s in self.sessions.values() if s.state == "detached"]

    def waiting_count(self):
        return sum(len(q) for q in self.queues.values())

    # -- holding and handing on

    def _take_ex(self, cid, name):
        self.ex[name] = cid
        self.ex_event[name] = self.event
        self.sessions[cid].ex.add(name)

    def _take_sh(self, cid, name):
        self.sh.setdefault(name, []).append(cid)
        self.sessions[cid].sh.add(name)
        return len(self.sh[name])

    def _drop_ex(self, cid, name):
        del self.ex[name]
        del self.ex_event[name]
        self.sessions[cid].ex.discard(name)
        self._serve("x", name)

    def _drop_sh(self, cid, name):
        holders = self.sh[name]
        holders.remove(cid)
        if not holders:
            del self.sh[name]
        self.sessions[cid].sh.discard(name)
        self._serve("s", name)

    def _serve(self, kind, name):
        """FIFO: grant queued waiters while the first one fits."""
        queue = self.queues[(kind, name)]
        while queue:
            cid, limit = queue[0]
            if kind == "x" and name in self.ex:
                return
            if kind == "s" and len(self.sh.get(name, ())) >= limit:
                return
            queue.pop(0)
            self.sessions[cid].waiting = None
            if kind == "x":
                self._take_ex(cid, name)
                self.grants.append((cid, g_ok(name)))
            else:
                self.grants.append((cid, sg_ok(self._take_sh(cid, name), name)))

    def _cancel_wait(self, s):
        if s.waiting is None:
            return
        kind, name = s.waiting
        queue = self.queues[(kind, name)]
        queue[:] = [(c, lim) for c, lim in queue if c != s.cid]
        s.waiting = None
        self._serve(kind, name)

    def _release_all(self, s, orphaned):
        if orphaned:
            self.orphans += len(s.ex)
            self.shared_orphans += len(s.sh)
        for name in sorted(s.ex):
            self._drop_ex(s.cid, name)
        for name in sorted(s.sh):
            self._drop_sh(s.cid, name)

    def _kill_token(self, token):
        del self.tokens[token]
        self.dead_tokens.append(token)

    # -- Part 1

    def g(self, cid, name):
        self.event += 1
        holder = self.ex.get(name)
        if holder is None:
            self._take_ex(cid, name)
        return g_ok(name) if holder in (None, cid) else g_fail(name)

    def r(self, cid, name):
        self.event += 1
        if self.ex.get(name) != cid:
            return r_fail(name)
        self._drop_ex(cid, name)
        return r_ok(name)

    def i(self, name):
        return i_yes(name) if name in self.ex else i_no(name)

    def sg(self, cid, name):
        holders = self.sh.get(name, [])
        n = len(holders) if cid in holders else self._take_sh(cid, name)
        return sg_ok(n, name)

    def sr(self, cid, name):
        if cid not in self.sh.get(name, ()):
            return sr_fail(name)
        self._drop_sh(cid, name)
        return sr_ok(name)

    def si(self, name):
        n = len(self.sh.get(name, ()))
        return si_yes(n, name) if n else si_no(name)

    def iam(self, cid, name):
        if cid in self.registry:
            self.registry.remove(cid)
        if name:
            self.registry.append(cid)
        self.sessions[cid].name = name or None
        return OK

    def me(self, cid):
        s = self.sessions[cid]
        return ("1 %s %s\n" % (s.addr, s.name or s.addr)).encode()

    # -- Part 2

    def w(self, cid, ms, name):
        """The answer, or None when the request is queued."""
        self.event += 1
        holder = self.ex.get(name)
        if holder in (None, cid):
            return self.g(cid, name)
        if ms == 0:
            return g_fail(name)
        return self._queue(cid, "x", name, 0)

    def sw(self, cid, limit, ms, name):
        holders = self.sh.get(name, [])
        queue = self.queues[("s", name)]
        if cid in holders:
            return sg_ok(len(holders), name)
        if not queue and len(holders) < limit:
            return sg_ok(self._take_sh(cid, name), name)
        if ms == 0:
            return sg_fail(name)
        return self._queue(cid, "s", name, limit)

    def _queue(self, cid, kind, name, limit):
        if self.queues[(kind, name)]:
            self.covered["queued behind another"] += 1
        self.queues[(kind, name)].append((cid, limit))
        self.sessions[cid].waiting = (kind, name)
        return None

    def t(self, cid, name):
        """(event, name): which hold cid has on name (its token's rank), or the failure line."""
        return (self.ex_event[name], name) if self.ex.get(name) == cid else t_fail(name)

    def ra(self, cid):
        self.event += 1
        s = self.sessions[cid]
        answer = b"1 Release All Success: %d %d\n" % (len(s.ex), len(s.sh))
        self._release_all(s, orphaned=False)
        return answer

    def grace(self, cid, ms):
        self.sessions[cid].grace = ms
        return b"1 Grace Set: %d\n" % ms

    def session(self, cid):
        """The known answer, or None when the daemon makes a new token now."""
        token = self.sessions[cid].token
        return None if token is None else b"1 Session: " + token.encode() + b"\n"

    def learn_token(self, cid, token):
        if token in self.tokens or token in self.dead_tokens:
            raise SoakFailure("session token %r was handed out before" % token)
        self.sessions[cid].token = token
        self.tokens[token] = cid

    def resume(self, cid, token):
        old_cid = self.tokens.get(token)
        if old_cid is None or old_cid == cid or self.sessions[old_cid].state != "detached":
            return RESUME_FAIL
        old, new = self.sessions[old_cid], self.sessions[cid]
        answer = b"1 Resume Success: %d %d\n" % (len(old.ex), len(old.sh))
        for name in old.ex:      # the hold (and its token) changes owner
            self.ex[name] = cid
            new.ex.add(name)
        for name in sorted(old.sh):
            holders = self.sh[name]
            if cid in holders:   # both held it: kept once, in the resumer's place
                self.covered["resume of a shared lock both hold"] += 1
                self._drop_sh(old_cid, name)
            else:                # keeps its place in the order taken
                holders[holders.index(old_cid)] = cid
                new.sh.add(name)
        old.ex.clear()
        old.sh.clear()
        old.state = "gone"
        if new.token is not None:
            self._kill_token(new.token)
        new.token = token        # the token now names the resumer's locks
        self.tokens[token] = cid
        new.grace = max(new.grace, old.grace)
        return answer

    def close(self, cid):
        """The connection dropped (clean close or reset)."""
        self.event += 1
        s = self.sessions[cid]
        if cid in self.registry:
            self.registry.remove(cid)
        s.name = None
        self._cancel_wait(s)
        if s.grace > 0 and s.holds():
            s.state = "detached"
            return
        self._release_all(s, orphaned=True)
        s.state = "gone"
        if s.token is not None:
            self._kill_token(s.token)

    # -- what the probe sees

    def display(self, cid):
        s = self.sessions[cid]
        return s.name or s.addr

    def inspect_lines(self):
        """Answers to d, sd, dump, dump shared, who (in that order)."""
        out = ["%s: %s\n" % (n, self.display(self.ex[n])) for n in sorted(self.ex)]
        out += ["%s: %s\n" % (n, self.display(c)) for n in sorted(self.sh) for c in self.sh[n]]
        addr = lambda c: self.sessions[c].addr
        out.append("map[%s]\n" % " ".join("%s:%s" % (n, addr(self.ex[n])) for n in sorted(self.ex)))
        out.append("map[%s]\n" % " ".join("%s:[%s]" % (n, " ".join(addr(c) for c in self.sh[n]))
                                            for n in sorted(self.sh)))
        out += ["%s: %s\n" % (self.sessions[c].addr, self.sessions[c].name) for c in self.registry]
        return [ln.encode() for ln in out]

    def stats(self):
        out = {"command_" + c: self.commands[c] for c in PART1}
        out.update(connections=self.open_count(), invalid_commands=self.invalid,
                   locks=len(self.ex), shared_locks=len(self.sh), orphans=self.orphans,
                   shared_orphans=self.shared_orphans)
        return out


# --------------------------------------------------------------------------
# The driver: random steps against the real daemon, checked against Model


class SoakRun:
    def __init__(self, daemon, ws_port, seed, steps):
        self.daemon = daemon
        self.metrics_url = "http://127.0.0.1:%d/metrics" % ws_port
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.rng = random.Random(seed)
        self.seed = seed
        self.steps = steps
        self.step_no = 0
        self.model = Model()
        self.clients = {}      # cid -> harness Client, for open connections
        self.next_cid = 0
        self.unix_first = None  # N of the soak's first unix connection (unix:N)
        self.unix_opened = 0
        self.history = collections.deque(maxlen=40)
        self.token_events = []  # events whose tokens were seen, sorted
        self.event_tokens = {}  # event -> tokens seen of holds it gave
        self.hold_token = {}    # (event, name) -> token seen
        self.covered = collections.Counter()
        self.probe = None

    # -- running

    def run(self):
        try:
            self.probe = self.connect("tcp")
            self.settle()
            for self.step_no in range(1, self.steps + 1):
                self.step()
                self.check_quiet()
                if self.step_no % 250 == 0:
                    self.settle()
                else:
                    self.check_inspect()
            self.step_no = "final"
            self.finish()
        except Exception as e:  # the seed and history help whatever it was
            raise SoakFailure(self.report(e)) from None

    def report(self, e):
        return ("soak failed at step %s of %d, seed %d (rerun: GLOCKD_SOAK_SEED=%d "
                "GLOCKD_SOAK_STEPS=%d): %s: %s\nlast requests and answers (cN = connection N):\n"
                "%s\ndaemon stderr:\n%s"
                % (self.step_no, self.steps, self.seed, self.seed, self.steps,
                   type(e).__name__, e, "\n".join(self.history), tail(self.daemon.stderr(), 2000)))

    def step(self):
        rng = self.rng
        live = [c for c in self.clients if c != self.probe]
        ready = [c for c in live if self.model.sessions[c].waiting is None]
        detached = self.model.detached()
        if len(live) < MIN_LIVE or (len(live) < MAX_LIVE and rng.random() < 0.05):
            return self.open_step()
        roll = rng.random()
        if roll < 0.035 or not ready:
            return self.close_step(rng.choice(live), reset=rng.random() < 0.5)
        if detached and roll < (0.35 if len(detached) >= MAX_DETACHED else 0.07):
            return self.resume_step(ready)
        return self.op_step(rng.choice(ready))

    # -- connections

    def connect(self, kind):
        cid = self.next_cid
        self.next_cid += 1
        client = self.daemon.client(kind)
        self.clients[cid] = client
        if kind == "tcp":
            addr = client.addr()
        elif self.unix_first is None:
            # unix:N counts every unix connection since start: learn where
            # ours begin from the daemon, then count them ourselves.
            addr = self.learn_unix_addr(cid, client)
        else:
            addr = "unix:%d" % (self.unix_first + self.unix_opened)
        if kind == "unix":
            self.unix_opened += 1
        self.model.open(cid, addr)
        self.note("c%d connected (%s)" % (cid, addr))
        return cid

    def learn_unix_addr(self, cid, client):
        self.model.count("me")
        client.send(b"me\n")
        line = client.readline()
        self.note("c%d <- %r" % (cid, line))
        m = re.match(rb"^1 (unix:(\d+)) unix:\d+\n$", line)
        if not m:
            raise SoakFailure("me on a unix connection answered %r" % line)
        self.unix_first = int(m.group(2))
        return m.group(1).decode()

    def open_step(self, register=None):
        rng = self.rng
        cid = self.connect(rng.choice(["tcp", "unix"]))
        self.covered["open"] += 1
        if register if register is not None else rng.random() < 0.6:
            name = rng.choice(["c%d" % cid, "c%d" % cid, "worker"])
            self.request(cid, "iam " + name, self.model.iam(cid, name))
        if rng.random() < 0.3:
            self.request(cid, "me", self.model.me(cid))
        return cid

    def close_step(self, cid, reset):
        client = self.clients.pop(cid)
        self.expect_nothing_more(cid, client)
        self.note("c%d %s" % (cid, "reset" if reset else "closed"))
        self.covered["reset" if reset else "close"] += 1
        if self.model.sessions[cid].waiting:
            self.covered["close while waiting"] += 1
        if reset:
            client.reset()
        else:
            client.close()
        self.model.close(cid)
        if self.model.sessions[cid].state == "detached":
            self.covered["kept by grace"] += 1
        # The daemon sees the close asynchronously: wait until it has.
        self.settle()
        self.deliver_grants()

    def resume_step(self, ready):
        rng = self.rng
        cid = self.open_step() if rng.random() < 0.8 or not ready else rng.choice(ready)
        choice = rng.random()
        detached = [s.token for s in self.model.detached()]
        if choice < 0.7:
            token = rng.choice(detached)
        elif choice < 0.8 and self.model.dead_tokens:
            token = rng.choice(self.model.dead_tokens)
        elif choice < 0.9 and self.model.tokens:
            # maybe a live connection's; chosen by connection, not by the
            # token's (random) value, so that a seed replays the same run
            token = rng.choice(sorted(self.model.tokens, key=self.model.tokens.get))
        else:
            token = "%032x" % rng.getrandbits(128)
        want = self.model.resume(cid, token)
        self.covered["resume ok" if want != RESUME_FAIL else "resume failure"] += 1
        self.request(cid, "resume " + token, want)

    # -- one request on one connection

    OPS = {"g": 14, "r": 10, "i": 4, "w": 10, "sg": 8, "sr": 6, "si": 3, "sw": 8, "t": 5, "ra": 2,
           "grace": 3, "session": 3, "iam": 2, "me": 1, "invalid": 1, "bad": 1}

    def op_step(self, cid):
        s = self.model.sessions[cid]
        # Holders release more often, so that queues move.
        weights = [w * (2 if (op == "r" and s.ex) or (op == "sr" and s.sh) else 1)
                   for op, w in self.OPS.items()]
        op = self.rng.choices(list(self.OPS), weights)[0]
        self.covered[op] += 1
        getattr(self, "op_" + op)(cid)

    def held_or_any(self, held, names):
        if held and self.rng.random() < 0.8:
            return self.rng.choice(sorted(held))
        return self.rng.choice(names)

    def op_g(self, cid):
        name = self.rng.choice(EXCLUSIVE)
        self.request(cid, "g " + name, self.model.g(cid, name))

    def op_r(self, cid):
        name = self.held_or_any(self.model.sessions[cid].ex, EXCLUSIVE)
        self.request(cid, "r " + name, self.model.r(cid, name))

    def op_i(self, cid):
        name = self.rng.choice(EXCLUSIVE)
        self.request(cid, "i " + name, self.model.i(name))

    def op_w(self, cid):
        name = self.rng.choice(EXCLUSIVE)
        ms = self.rng.choice([0, LONG_MS])
        self.request(cid, "w %d %s" % (ms, name), self.model.w(cid, ms, name))

    def op_sg(self, cid):
        name = self.rng.choice(sorted(SHARED_LIMIT))
        self.request(cid, "sg " + name, self.model.sg(cid, name))

    def op_sr(self, cid):
        name = self.held_or_any(self.model.sessions[cid].sh, sorted(SHARED_LIMIT))
        self.request(cid, "sr " + name, self.model.sr(cid, name))

    def op_si(self, cid):
        name = self.rng.choice(sorted(SHARED_LIMIT))
        self.request(cid, "si " + name, self.model.si(name))

    def op_sw(self, cid):
        name = self.rng.choice(sorted(SHARED_LIMIT))
        limit, ms = SHARED_LIMIT[name], self.rng.choice([0, LONG_MS])
        self.request(cid, "sw %d %d %s" % (limit, ms, name), self.model.sw(cid, limit, ms, name))

    def op_t(self, cid):
        name = self.held_or_any(self.model.sessions[cid].ex, EXCLUSIVE)
        want = self.model.t(cid, name)
        if isinstance(want, bytes):
            return self.request(cid, "t " + name, want)
        line = self.request(cid, "t " + name, None, read=True)
        m = re.match(rb"^(\d+) Lock Token: (.*)\n$", line)
        if not m or m.group(2) != name.encode():
            raise SoakFailure("c%d: t %s answered %r, expected 'TOKEN Lock Token: %s'"
                              % (cid, name, line, name))
        self.check_token(cid, want, int(m.group(1)))

    def op_ra(self, cid):
        self.request(cid, "ra", self.model.ra(cid))

    def op_grace(self, cid):
        # A long grace only where the token is known, so the kept locks can
        # be resumed (else they would stay held to the end of the test).
        known = self.model.sessions[cid].token is not None
        ms = self.rng.choice([0, GRACE_MS, GRACE_MS] if known else [0])
        self.request(cid, "grace %d" % ms, self.model.grace(cid, ms))

    def op_session(self, cid):
        want = self.model.session(cid)
        if want is not None:
            return self.request(cid, "session", want)
        line = self.request(cid, "session", None, read=True)
        m = re.match(rb"^1 Session: ([0-9A-Za-z_-]{16,})\n$", line)
        if not m:
            raise SoakFailure("c%d: session answered %r" % (cid, line))
        self.model.learn_token(cid, m.group(1).decode())

    def op_iam(self, cid):
        name = self.rng.choice(["c%d" % cid, "worker", ""])
        self.request(cid, ("iam " + name).strip(), self.model.iam(cid, name))

    def op_me(self, cid):
        self.request(cid, "me", self.model.me(cid))

    def op_invalid(self, cid):
        # No answer at all to an unknown command: the i behind it answers first.
        name = self.rng.choice(EXCLUSIVE)
        self.request(cid, "nope %s\ni %s" % (name, name), self.model.i(name))

    def op_bad(self, cid):
        line = self.rng.choice(["w", "w x0", "w -1 x0", "w 2147483648 x0", "sw 0 10 s0",
                                "sw a 10 s0", "sw 2 x s0"])
        got = self.request(cid, line, None, read=True)
        if not (got.startswith(b"0 Bad Request: ") and got.endswith(b"\n")):
            raise SoakFailure("c%d: %r answered %r, expected '0 Bad Request: ...'"
                              % (cid, line, got))

    # -- wire

    def wire(self, line):
        """The request as sent: names with a space get extra whitespace
        (normalised by the daemon), some lines end in \\r\\n."""
        line = line.replace("lock 5", self.rng.choice(["lock 5", "lock  5", "lock \t5"]))
        return line + ("\r\n" if self.rng.random() < 0.1 else "\n")

    def request(self, cid, line, want, read=False):
        """Send one request (lines) on cid. want: the expected answer line,
        or None: read=True returns the line unchecked, read=False means the
        request is queued (a w/sw waiting) and is synchronised on."""
        for part in line.split("\n"):
            self.model.count(part)
        self.note("c%d -> %r" % (cid, line))
        self.clients[cid].send(self.wire(line).encode())
        if want is None and not read:
            self.covered["queued"] += 1
            self.settle_waiters()
            return None
        got = self.read(cid)
        if want is not None and got != want:
            raise SoakFailure("c%d: %r answered %r, expected %r" % (cid, line, got, want))
        self.deliver_grants()
        return got

    def read(self, cid):
        line = self.clients[cid].readline()
        self.note("c%d <- %r" % (cid, line))
        return line

    def deliver_grants(self):
        """Read the answers a release (or close, or resume) gave to waiters."""
        for cid, want in self.model.take_grants():
            self.covered["granted from queue"] += 1
            got = self.read(cid)
            if got != want:
                raise SoakFailure("c%d: waiting, got %r, expected the grant %r" % (cid, got, want))

    def note(self, text):
        self.history.append("[%s] %s" % (self.step_no, text))

    # -- checks

    def check_token(self, cid, hold, token):
        """Tokens grow strictly with every acquisition, and a hold keeps its token."""
        event, name = hold
        if not 1 <= token < MAX_TOKEN:
            raise SoakFailure("c%d: token %d of %s out of range" % (cid, token, name))
        if hold in self.hold_token:
            if self.hold_token[hold] != token:
                raise SoakFailure("c%d: token of its hold on %s changed from %d to %d"
                                  % (cid, name, self.hold_token[hold], token))
            return
        # Above every token of earlier events, below every one of later
        # events, and not one given by the same event.
        events, tokens = self.token_events, self.event_tokens
        i, j = bisect.bisect_left(events, event), bisect.bisect_right(events, event)
        before = max(tokens[events[i - 1]]) if i > 0 else 0
        after = min(tokens[events[j]]) if j < len(events) else MAX_TOKEN
        same = tokens.get(event, [])
        if not before < token < after or token in same:
            raise SoakFailure("c%d: token %d of %s is not above every token issued before it "
                              "(%d) and below every one issued after it (%d), or repeats one "
                              "given at the same time %r" % (cid, token, name, before, after, same))
        if i == j:
            events.insert(i, event)
        tokens[event] = same + [token]
        self.hold_token[hold] = token

    def check_quiet(self):
        """No connection has an answer the model does not expect."""
        socks = {self.clients[c].sock: c for c in self.clients}
        for cid, client in self.clients.items():
            if client.buf:
                raise SoakFailure("c%d: unexpected bytes %r" % (cid, client.buf))
        readable, _, _ = select.select(list(socks), [], [], 0)
        for sock in readable:
            self.expect_nothing_more(socks[sock], self.clients[socks[sock]])

    def expect_nothing_more(self, cid, client):
        if client.buf:
            raise SoakFailure("c%d: unexpected bytes %r" % (cid, client.buf))
        readable, _, _ = select.select([client.sock], [], [], 0)
        if readable:
            data = client.sock.recv(4096)
            raise SoakFailure("c%d: unexpected %s" % (cid, repr(data) if data else "close"))

    def check_inspect(self):
        problem = self.inspect_differs()
        if problem:
            raise SoakFailure(problem)

    def inspect_differs(self):
        """d, sd, dump, dump shared and who match the model exactly: no lock
        is held by a connection that is gone, none is missing."""
        want = self.model.inspect_lines()
        got = self.probe_lines("d\nsd\ndump\ndump shared\nwho")
        if got != want:
            return ("probe: d/sd/dump/dump shared/who answered\n  %r\nexpected\n  %r"
                    % (got, want))
        return None

    def q_differs(self):
        self.model.count("q")
        got, want = self.clients[self.probe].q(), self.model.stats()
        if got != want:
            return "q differs (got, expected): %r" % {
                k: (got[k], want[k]) for k in Q_KEYS if got[k] != want[k]}
        return None

    def waiters_differ(self):
        text = self.http.open(self.metrics_url, timeout=TIMEOUT).read().decode()
        m = re.search(r"^glockd_waiters (\d+)$", text, re.M)
        if m is None:
            return "no glockd_waiters in /metrics"
        if int(m.group(1)) != self.model.waiting_count():
            return "glockd_waiters is %s, expected %d" % (m.group(1), self.model.waiting_count())
        return None

    def probe_lines(self, requests):
        """Every line answered to requests, ended by an i of a free name."""
        end = "__soak_end_%s" % self.step_no
        for part in requests.split("\n") + ["i"]:
            self.model.count(part)
        client = self.clients[self.probe]
        client.send(("%s\ni %s\n" % (requests, end)).encode())
        out = []
        for _ in range(1000):
            line = client.readline()
            if line == i_no(end):
                return out
            out.append(line)
        raise SoakFailure("probe: no end to the answers of %r" % requests)

    def settle(self):
        """After a close (which the daemon sees asynchronously) and now and
        then: poll until q, the inspection answers and the number of queued
        waits all match the model; a bounded wait, then the difference."""
        self.poll(lambda: self.q_differs() or self.inspect_differs() or self.waiters_differ())

    def settle_waiters(self):
        """A w/sw the model queued is queued in the daemon before the next
        step (FIFO depends on it)."""
        self.poll(self.waiters_differ)

    def poll(self, differs):
        deadline = time.monotonic() + TIMEOUT
        while True:
            problem = differs()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise SoakFailure("after %.0f s: %s" % (TIMEOUT, problem))
            time.sleep(0.001)

    # -- the end

    def finish(self):
        """Resume what is still kept and release it, close most connections,
        check q, then stop the daemon with some connections (and waits) open."""
        for s in self.model.detached():
            cid = self.open_step(register=False)
            self.request(cid, "resume " + s.token, self.model.resume(cid, s.token))
            self.request(cid, "ra", self.model.ra(cid))
            self.check_inspect()
        live = [c for c in self.clients if c != self.probe]
        for cid in live[:-KEEP_AT_SHUTDOWN]:
            self.close_step(cid, reset=False)
        self.settle()
        self.daemon.stop()
        for cid, client in self.clients.items():
            # Closed by the daemon; a waiting request may get its time-out answer.
            waiting = self.model.sessions[cid].waiting
            allowed = [b""]
            if waiting:
                kind, name = waiting
                allowed.append(g_fail(name) if kind == "x" else sg_fail(name))
            data = client.expect_eof()
            if data not in allowed:
                raise SoakFailure("c%d: got %r at shutdown, expected one of %r"
                                  % (cid, data, allowed))
            client.close()


class Soak(DaemonTestCase):
    def test_model_based_soak(self):
        ws = {}

        def argv(d):
            ws["port"] = free_port()
            return ["--port", str(d.port), "--bind", "127.0.0.1", "--unix", d.unix_path,
                    "--ws", str(ws["port"])]

        d = self.daemon(unix=True, argv=argv)
        run = SoakRun(d, ws["port"], SEED, STEPS)
        self.addCleanup(lambda: [c.close() for c in run.clients.values()])
        started = time.monotonic()
        run.run()
        if os.environ.get("GLOCKD_SOAK_STATS"):
            covered = run.covered + run.model.covered
            print("\nseed %d, %d steps in %.1f s: %s"
                  % (SEED, STEPS, time.monotonic() - started,
                     ", ".join("%s %d" % kv for kv in sorted(covered.items()))), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()

// The protocol fuzzer's stand-in for the daemon (fuzz_protocol.cpp drives
// it): up to four connection slots fed as src/loop_requests.cpp and
// src/loop_close.cpp feed theirs, with the checks of what the daemon relies
// on after every step (Harness::check) and at each answer.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "line_reader.hpp"
#include "protocol.hpp"

namespace glockd::fuzz {

constexpr ConnId kSlots = 4;
constexpr std::size_t kMaxLine = 64;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz_protocol: %s\n", what);
  std::abort();
}
inline void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

// Set once from the environment: prints each step and every answer.
inline const bool kTrace = std::getenv("FUZZ_PROTOCOL_TRACE") != nullptr;

inline std::size_t lines_in(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

enum class State { Free, Open, Detached };

// What the daemon keeps per connection slot (src/connection.hpp), reduced to
// what the protocol sees.
struct Conn {
  State state = State::Free;
  Session session;
  LineReader reader{kMaxLine};
  std::string out;          // answers produced, checked and dropped per step
  std::string pending;      // requests queued behind a blocked one
  bool blocked = false;
  Command wait_cmd{};       // the blocked request: w or sw, its name,
  std::string wait_name;    // limit, and when it queued
  std::uint64_t wait_limit = 0;
  std::uint64_t wait_seq = 0;
  std::string token;        // the session token it was given (or resumed)
  std::uint32_t grace = 0;  // as `grace` last set it, or a resume raised it
};

// Session tokens, predictable so the fuzzer can also type a right one.
inline std::vector<std::string> issued_tokens;
inline std::string next_token(int&) {
  issued_tokens.push_back("t" + std::to_string(issued_tokens.size() + 1));
  return issued_tokens.back();
}

class Harness {
 public:
  static constexpr std::size_t kMaxSessions = 2;

  explicit Harness(Features features)
      : proto_(table_, registry_, stats_, features, &next_token) {
    issued_tokens.clear();
    for (ConnId i = 0; i < kSlots; ++i) conns_[i].session.id = i;
    proto_.set_max_sessions(kMaxSessions);  // small, so the bound is reached
  }

  void send(ConnId i, std::string_view bytes) {
    Conn& c = conns_[i];
    if (c.state == State::Detached) return;
    if (c.state == State::Free) open(i);
    consume(c, bytes);
    run_pipelines();
  }

  void drop(ConnId i) {
    Conn& c = conns_[i];
    if (c.state != State::Open) return;
    c.blocked = false;  // the daemon answers nothing more on a closed socket
    c.pending.clear();
    const std::uint32_t ex = c.session.holdings.exclusive, sh = c.session.holdings.shared;
    const std::uint64_t orphans = stats_.orphans + stats_.shared_orphans;
    const bool kept = proto_.disconnect(c.session).kept;
    answer_grants();
    // Kept exactly when it has a grace period and something to keep.
    require(kept == (c.grace > 0 && ex + sh > 0), "locks kept without grace, or not with it");
    require(c.session.holdings.waiter == kNil, "a dropped connection still waits");
    if (kept) {
      require(c.session.holdings.total() == ex + sh, "a kept session lost locks");
      require(stats_.orphans + stats_.shared_orphans == orphans, "kept locks counted as orphans");
      c.state = State::Detached;
    } else {
      require(stats_.orphans + stats_.shared_orphans == orphans + ex + sh,
              "a dropped connection's locks are not all orphaned");
      release_slot(i);
    }
    run_pipelines();
  }

  void time_out(ConnId i) {
    Conn& c = conns_[i];
    if (c.state != State::Open || !c.blocked) return;
    const std::size_t before = c.out.size();
    (void)proto_.expire_wait(c.session, c.out);
    const std::string want = (c.wait_cmd == Command::sw ? "0 Shared Lock Get Failure: "
                                                        : "0 Lock Get Failure: ") +
                             c.wait_name + "\n";
    require(c.out.compare(before, std::string::npos, want) == 0,
            "a timed-out wait is not answered with exactly its failure");
    require(c.session.holdings.waiter == kNil, "a timed-out wait is still queued");
    answer_grants();  // a semaphore waiter behind it may fit now
    unblock(i);
    run_pipelines();
  }

  void grace_ends(ConnId i) {
    Conn& c = conns_[i];
    if (c.state != State::Detached) return;
    const std::uint64_t orphans = stats_.orphans + stats_.shared_orphans;
    const std::size_t held = c.session.holdings.total();
    (void)proto_.expire_detached(c.session);
    answer_grants();
    require(stats_.orphans + stats_.shared_orphans == orphans + held,
            "an expired session's locks are not all orphaned");
    release_slot(i);
    run_pipelines();
  }

  // C sends "resume TOKEN" with the token D was given: the fuzzer would
  // rarely guess one that is live. handle() checks the answer.
  void resume(ConnId d, ConnId i) {
    if (conns_[d].token.empty()) return;
    send(i, "resume " + conns_[d].token + "\n");
  }
  void resume_issued(std::size_t n, ConnId i) {
    if (issued_tokens.empty()) return;
    send(i, "resume " + issued_tokens[n % issued_tokens.size()] + "\n");
  }

  // Everything the daemon relies on, after every step.
  void check() {
    std::size_t blocked = 0, exclusive = 0, shared = 0, with_grace = 0;
    for (ConnId i = 0; i < kSlots; ++i) {
      Conn& c = conns_[i];
      // --max-sessions: a slot per open or kept session with grace, no more.
      if (c.state == State::Open || c.state == State::Detached)
        with_grace += c.session.grace_ms > 0;
      const Holdings& h = c.session.holdings;
      require(c.session.id == i, "a session lost its id");
      // A blocked connection is answered exactly once: it is in the queue
      // until the grant or the time-out, and nothing else answers it.
      require(c.blocked == (h.waiter != kNil), "blocked but not queued, or queued but not blocked");
      require(c.state == State::Open || !c.blocked, "a connection that is gone still waits");
      require(c.state != State::Free || h.total() == 0, "a free slot holds locks");
      require(c.state != State::Detached || h.total() > 0, "a detached session holds nothing");
      require(c.blocked || c.pending.empty(), "requests left queued behind nothing");
      require(c.out.empty() || c.out.back() == '\n', "an answer is not whole lines");
      if (kTrace && !c.out.empty()) std::fprintf(stderr, "  %u got: %s", i, c.out.c_str());
      // Nor does the first in a lock's queue wait when the lock would take
      // it: releases, drops and time-outs must have handed the lock on.
      if (c.blocked && first_waiter(c)) {
        require(c.wait_cmd == Command::w ? table_.is_locked(c.wait_name)
                                         : table_.shared_holders(c.wait_name) >= c.wait_limit,
                "the first waiter of a lock that has room still waits");
      }
      blocked += c.blocked;
      exclusive += h.exclusive;
      shared += h.shared;
      c.out.clear();  // sent
    }
    require(table_.waiters() == blocked, "queued waits that no blocked connection owns");
    require(proto_.sessions_reserved() == with_grace, "session slots leaked or double-counted");
    require(with_grace <= kMaxSessions, "more sessions than --max-sessions");
    require(table_.exclusive_locks() == exclusive, "exclusive locks that no session counts");
    // Every hold belongs to an open or detached connection that counts it.
    std::array<std::size_t, kSlots> count{};
    std::size_t shared_holds = 0;
    for (LockKind kind : {LockKind::Exclusive, LockKind::Shared}) {
      table_.for_each(kind, [&](std::string_view, const std::vector<ConnId>& holders) {
        std::array<bool, kSlots> seen{};
        for (ConnId c : holders) {
          require(c < kSlots && conns_[c].state != State::Free,
                  "a lock is held by a connection that is gone and not detached");
          require(!seen[c], "a connection holds one lock twice");  // e.g. after a resume
          seen[c] = true;
          ++count[c];
        }
        if (kind == LockKind::Shared) shared_holds += holders.size();
      });
    }
    require(shared_holds == shared, "shared holds that no session counts");
    for (ConnId i = 0; i < kSlots; ++i)
      require(count[i] == conns_[i].session.holdings.total(), "a session miscounts its locks");
  }

  void finish() {
    for (ConnId i = 0; i < kSlots; ++i) drop(i);
    for (ConnId i = 0; i < kSlots; ++i) grace_ends(i);
    check();
    require(table_.exclusive_locks() == 0 && table_.shared_locks() == 0,
            "locks outlive every connection");
  }

 private:
  void open(ConnId i) {
    Conn& c = conns_[i];
    c = Conn{};
    c.state = State::Open;
    c.session.id = i;
    static const std::string names[kSlots] = {"127.0.0.1:1", "unix:2", "[::1]:3", "10.0.0.4:4"};
    c.session.addr = names[i];
    proto_.attach(c.session);
  }
  void release_slot(ConnId i) {
    Conn& c = conns_[i];
    require(c.session.holdings.total() == 0 && c.session.holdings.waiter == kNil &&
                c.session.holdings.head == kNil,
            "a freed slot still holds something");
    require(!c.session.kept, "a freed slot's session is still kept");
    proto_.forget(c.session);
    c = Conn{};
    c.session.id = i;
  }

  // As Loop::consume: bytes behind a blocked request (or behind requests
  // still queued behind one) wait their turn.
  void consume(Conn& c, std::string_view bytes) {
    if (c.blocked || !c.pending.empty()) c.pending.append(bytes);
    else consume_lines(c, bytes);
  }
  void consume_lines(Conn& c, std::string_view text) {
    const std::size_t used = c.reader.feed(
        text, [&](std::string_view line) { return handle(c, line); },
        [&] { proto_.overlong_line(); });
    if (used < text.size()) c.pending.append(text.substr(used));
  }

  // One request line; false when it blocks (the rest waits behind it).
  bool handle(Conn& c, std::string_view line) {
    std::string scratch;
    const Request req = parse_request(line, scratch);
    Command cmd = Command::kCount;
    for (std::size_t k = 0; k < kCommandCount; ++k)
      if (req.command == command_name(static_cast<Command>(k))) cmd = static_cast<Command>(k);
    // A resume succeeds exactly when the token is a detached session's.
    ConnId resumes = kNil;
    std::string resumed_answer;
    std::uint32_t resumed_grace = 0;
    for (ConnId d = 0; d < kSlots && cmd == Command::resume; ++d) {
      const Conn& old = conns_[d];
      if (old.state != State::Detached || old.token.empty() || old.token != req.argument) continue;
      resumes = d;
      resumed_grace = old.grace;
      resumed_answer = "1 Resume Success: " + std::to_string(old.session.holdings.exclusive) +
                       " " + std::to_string(old.session.holdings.shared) + "\n";
    }
    const std::size_t before = c.out.size();
    const Outcome outcome = proto_.handle_line(c.session, line, c.out);
    require(outcome.count_connections == (cmd == Command::q), "only q counts connections");
    if (outcome.count_connections) {
      std::size_t open = 0;
      for (const Conn& o : conns_) open += o.state == State::Open;
      proto_.answer_stats(open, c.out);
    }
    const ConnId taken_ = outcome.taken_over;
    if (taken_ != kNil) {  // as Loop::forget_kept
      require(taken_ < kSlots && conns_[taken_].state == State::Detached,
              "a resume took over a session that was not kept");
      c.token = conns_[taken_].token;  // the token now names the resumer's locks
      release_slot(taken_);
    }
    const std::string_view answer = std::string_view(c.out).substr(before);
    if (cmd == Command::resume) {
      require(taken_ == resumes, "a resume took over another session than its token's");
      require(answer == (resumes == kNil ? "0 Resume Failure\n" : resumed_answer),
              "a resume answered other than its token says");
      c.grace = std::max(c.grace, resumed_grace);
    }
    if (cmd == Command::grace && answer.starts_with("1 Grace Set: "))
      c.grace = static_cast<std::uint32_t>(std::stoul(std::string(answer.substr(13))));
    if (outcome.blocked) {
      require(cmd == Command::w || cmd == Command::sw, "only w and sw block");
      require(answer.empty() && outcome.wait_ms > 0, "a blocked request answered at once");
      c.blocked = true;
      c.wait_cmd = cmd;
      // The name is the argument after MS (and LIMIT for sw).
      std::string_view name = req.argument;
      for (int words = cmd == Command::sw ? 2 : 1; words > 0; --words) {
        const std::size_t sp = name.find(' ');
        name = sp == std::string_view::npos ? std::string_view() : name.substr(sp + 1);
      }
      c.wait_name = name;
      c.wait_seq = ++waits_;
      // sw's LIMIT, the first word (w: 0); already checked by the protocol.
      if (cmd == Command::sw) {
        const std::string_view limit = req.argument.substr(0, req.argument.find(' '));
        c.wait_limit = std::stoull(std::string(limit));
      }
    } else if (cmd == Command::kCount || (req.command.empty() && req.argument.empty())) {
      require(answer.empty(), "an unknown command was answered");
    } else if (cmd != Command::d && cmd != Command::sd && cmd != Command::dump &&
               cmd != Command::q && cmd != Command::who) {
      require(lines_in(answer) == 1 && answer.back() == '\n', "not exactly one answer line");
    }
    if (cmd == Command::session && answer.starts_with("1 Session: ")) {
      const std::string token(answer.substr(11, answer.size() - 12));
      require(c.token.empty() || c.token == token, "a connection's session token changed");
      c.token = token;
    }
    answer_grants();
    return !outcome.blocked;
  }

  // Queues are first come, first served: the first waiter is the one of
  // all blocked on the same lock that blocked first.
  bool first_waiter(const Conn& c) const {
    for (const Conn& o : conns_)
      if (o.blocked && o.wait_cmd == c.wait_cmd && o.wait_name == c.wait_name &&
          o.wait_seq < c.wait_seq)
        return false;
    return true;
  }

  // As Loop::answer_grants: each grant answers a blocked connection once.
  void answer_grants() {
    for (const Grant& g : table_.grants()) {
      require(g.conn < kSlots, "a grant for a connection that never was");
      Conn& w = conns_[g.conn];
      require(w.state == State::Open && w.blocked, "a grant for a connection that is not waiting");
      require(g.kind == (w.wait_cmd == Command::sw ? LockKind::Shared : LockKind::Exclusive) &&
                  g.name == w.wait_name,
              "a grant of another lock than the one waited for");
      require(w.session.holdings.waiter == kNil, "a granted wait is still queued");
      const std::size_t before = w.out.size();
      proto_.answer_grant(g, w.out);
      require(lines_in(std::string_view(w.out).substr(before)) == 1, "a grant is not one line");
      unblock(g.conn);
    }
    table_.grants().clear();
  }

  void unblock(ConnId i) {
    conns_[i].blocked = false;
    resume_queue_.push_back(i);
  }

  // As Loop::resume_pipelines: unblocked connections run what queued up.
  void run_pipelines() {
    for (std::size_t k = 0; k < resume_queue_.size(); ++k) {  // grows as we go
      Conn& c = conns_[resume_queue_[k]];
      if (c.state != State::Open || c.blocked || c.pending.empty()) continue;
      std::string input = std::move(c.pending);
      c.pending.clear();
      consume_lines(c, input);
    }
    resume_queue_.clear();
  }

  LockTable table_;
  Registry registry_;
  Stats stats_;
  Protocol proto_;
  std::array<Conn, kSlots> conns_;
  std::vector<ConnId> resume_queue_;
  std::uint64_t waits_ = 0;  // requests that blocked so far
};

}  // namespace glockd::fuzz

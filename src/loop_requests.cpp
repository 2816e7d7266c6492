// What a request does: bytes through the connection's stream and framing
// to request lines, each line to the handler, and the outcome applied in
// one place (Loop::apply), with grants answered by one step (Loop::settle).
// Also the bounds on what waits: requests queued behind a wait, answers
// not yet read by the peer.
#include <spdlog/spdlog.h>

#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;
using State = Connection::State;

// The framing's view of the loop, for one connection.
class Loop::Sink final : public FramingSink {
 public:
  Sink(Loop& loop, Connection& c) : loop_(loop), c_(c) {}
  void requests(std::string_view text) override { loop_.take_requests(c_, text); }
  std::string http_request(const http::Request& request) override {
    return loop_.http_response(request);
  }
  void serve_queued() override { loop_.serve_queued_now(c_); }
  void finish(const char* why) override {
    if (c_.open()) loop_.terminate(c_, why, true);
  }
  void upgraded() override {
    if (loop_.config_.verbose) spdlog::debug("{} upgraded to websocket", c_.session.addr);
  }
  void warn(Warning kind, std::string message) override {
    if (kind == Warning::SlowMessage) ++loop_.ws_message_timeouts_;
    loop_.warn_limited(kind == Warning::Origin ? loop_.origin_limit_ : loop_.http_limit_,
                       c_.session.addr + message);
  }

 private:
  Loop& loop_;
  Connection& c_;
};

[[gnu::always_inline]] inline void Loop::take_requests(Connection& c, std::string_view text) {
  if (!c.open()) return;
  // Requests wait behind a blocked request, behind unsent answers over their
  // bound, behind the turn's budget, and behind the requests queued
  // meanwhile until resume_pipelines() has run them: newer requests never
  // overtake older ones.
  if (c.handles_requests_now() && may_serve(c)) consume_lines(c, text);
  else c.pending_input.append(text);
}

[[gnu::always_inline]] inline void Loop::after_input(Connection& c) {
  // Behind a wait the recv stays on (a peer that leaves must lose its locks
  // at once), so what queues there is bounded here.
  // At the memory budget only a connection's share may queue there.
  if (c.waiting()) {
    const std::size_t limit = budget_.full() ? pause_floor() : pending_limit(c);
    if (c.pending_input.size() > limit) return refuse_queued_input(c, limit);
  }
  if (!c.out.empty()) queue_flush(c);
  if (c.state() != State::Throttled) {
    if (c.unsent() > max_out_) {
      ++output_pauses_;
      throttle(c);
    } else if (!c.waiting() && c.pending_input.size() > read_ahead_) {
      ++input_pauses_;
      throttle(c);
    }
  }
  schedule(c);
  account(c);
}

void Loop::on_bytes(Connection& c, std::string_view bytes) {
  if (c.framing().transparent()) {
    take_requests(c, bytes);
  } else {
    Sink sink(*this, c);
    c.framing().feed(bytes, c.out, sink);
  }
  if (!c.open()) return;
  if (!c.framing().transparent()) framing_deadline_update(c);
  after_input(c);
}

void Loop::framing_deadline(Connection& c) {
  Sink sink(*this, c);
  c.framing().deadline_passed(c.out, sink);
}

void Loop::framing_deadline_update(Connection& c) {
  // The framing's deadline (an HTTP head, a websocket message) holds while
  // its unit is unfinished; the next unit gets a deadline of its own.
  const int seconds = c.framing().deadline_seconds();
  const bool armed = c.deadlines[static_cast<std::size_t>(Deadline::Framing)] != 0;
  if (seconds == 0) {
    if (armed) disarm_deadline(c, Deadline::Framing);
    return;
  }
  if (armed && c.framing_unit == c.framing().unit()) return;
  disarm_deadline(c, Deadline::Framing);
  c.framing_unit = c.framing().unit();
  arm_deadline(c, Deadline::Framing, after_ms(std::int64_t{seconds} * 1000));
}

// Inlined into consume_lines' loop: this runs once per request.
[[gnu::always_inline]] inline bool Loop::handle_request(Connection& c, std::string_view line) {
  // Connection::answer() spelled out: a lambda here costs the hot path
  // about 12 instructions a request (bench/callgrind.sh).
  std::string& out = c.framing().answer_buffer(c.out);
  // Protocol is final: called directly when it is the handler (always, but
  // in the benchmark's echo ceiling), which saves an indirect call a line.
  const Outcome outcome = handler_ == protocol_.get()
                              ? protocol_->handle_line(c.session, line, out)
                              : handler_->handle_line(c.session, line, out);
  if (outcome.count_connections) {
    // Connections the kernel has queued but whose accept we have not seen
    // yet are counted too: once a turn, not a system call per `q`.
    if (accepts_counted_turn_ != turn_) {
      accepts_counted_turn_ = turn_;
      take_pending_accepts();
    }
    protocol_->answer_stats(open_, out);
  }
  c.framing().end_answer(c.out);
  apply(c, outcome);
  if (outcome.retry) [[unlikely]] return hold_line(c, line);
  // The turn's budget: this connection's, and the phase's time (the clock
  // read every kClockEvery requests). The rest is served on a later turn.
  if (--c.turn_left == 0 || ((++turn_requests_ % kClockEvery) == 0 && turn_overdue()))
    return false;
  // Checked per request, not per read: a few bytes of `d` or `q` can ask
  // for megabytes of answer. The rest waits until the peer reads.
  return c.serves_requests() && c.unsent() <= max_out_;
}

void Loop::consume_lines(Connection& c, std::string_view text) {
  if (c.turn_seen != turn_) {
    c.turn_seen = turn_;
    c.turn_left = kTurnRequests;
  }
  if (c.turn_left == 0 || turn_over_) {  // its budget is spent: a later turn
    ++deferred_;
    c.pending_input.append(text);
    return;
  }
  const std::size_t used = c.reader.feed(
      // always_inline: GCC stops inlining this call once handle_request
      // has grown, which costs the hot path ~40 instructions a request.
      text, [&](std::string_view line) __attribute__((always_inline)) {
        return handle_request(c, line);
      },
      [&] {
        protocol_->overlong_line();
        warn_limited(overlong_limit_, c.session.addr + " sent a line over --max-line (" +
                                          std::to_string(config_.max_line) +
                                          " bytes); discarded it");
      });
  if (used < text.size()) c.pending_input.append(text.substr(used));
}

void Loop::act(Connection& c, const Outcome& outcome) {
  if (outcome.refused != Refusal::None) log_refusal(c, outcome);
  if (outcome.taken_over != kNil) forget_kept(conns_.at(outcome.taken_over));
  if (outcome.blocked) block(c, outcome.wait_ms);
}

void Loop::settle() {
  // Waiters given their lock by a release: answer them and let their
  // pipelines go on (later, from the backlog, not from inside this call).
  std::vector<Grant>& grants = table_.grants();
  for (std::size_t i = 0; i < grants.size(); ++i) {
    Connection& w = conns_.at(grants[i].conn);
    w.answer([&](std::string& out) { protocol_->answer_grant(grants[i], out); });
    if (w.waiting()) wait_ended(w);
  }
  grants.clear();
}

void Loop::block(Connection& c, std::uint32_t wait_ms) {
  c.block();
  c.memory_paused = false;  // behind a wait reading goes on (after_input bounds it)
  arm_deadline(c, Deadline::Wait, after_ms(wait_ms));
  // Paused over its queue, it reads again: a wait must see its peer leave.
  maybe_unthrottle(c);
}

void Loop::wait_ended(Connection& c) {
  disarm_deadline(c, Deadline::Wait);
  c.end_wait();
  queue_flush(c);
  maybe_unthrottle(c);
  schedule(c);
}

void Loop::throttle(Connection& c) {
  // The peer sends faster than it is served, or reads slower than it asks:
  // stop reading until it catches up. A throttled peer that hangs up must
  // still lose its locks at once, so a poll watches for its FIN or RST
  // while the recv is off. (A peer that exits without reading leaves
  // unread answers, so its kernel sends RST.)
  c.throttle();
  if (c.in_flight().recv != 0) cancel(c, Op::Recv);
  if (c.in_flight().hangup == 0 && !c.fin_seen) arm_hangup(c);
}

void Loop::unthrottle_if_caught_up(Connection& c) {
  // Every cause at half its bound. Behind a wait the queue does not hold
  // reading off: reading must go on there (see refuse_queued_input).
  // Paused at the memory budget: until memory frees, or it holds little.
  // (What it holds, not the room its buffers keep: that may stay.)
  if (c.memory_paused && c.holding() <= pause_floor() / 2) c.memory_paused = false;
  if (c.memory_paused || c.unsent() > max_out_ / 2 ||
      (!c.waiting() && c.pending_input.size() > read_ahead_ / 2))
    return;
  c.unthrottle();
  if (c.in_flight().hangup != 0) cancel(c, Op::Hangup);
  if (c.in_flight().recv == 0) rearm_queue_.push_back(c.session.id);
}

void Loop::refuse_queued_input(Connection& c, std::size_t limit) {
  // Too much queued behind a blocked wait. Reading must go on while a
  // connection waits: a peer that exits after writing more than we read
  // leaves its FIN behind that data in its own send queue, where no poll
  // of ours can see it, and its locks would outlive it by minutes. So, as
  // Redis does past client-query-buffer-limit, the connection is closed.
  ++queue_overflows_;
  warn_limited(queue_limit_, c.session.addr + ": more than " + std::to_string(limit) +
                                 " bytes of requests queued behind a wait" +
                                 (limit < pending_limit(c) ? " at the memory budget" : "") +
                                 "; closed the connection (its locks are released)");
  c.pending_input.clear();
  constexpr std::string_view kWhy = "too many requests queued behind a wait";
  c.answer([&](std::string& out) { out.append("0 Bad Request: ").append(kWhy).push_back('\n'); });
  c.framing().end_for_policy(c.out, kWhy);
  terminate(c, "too many requests queued behind a wait", true);
}

std::size_t Loop::pending_limit(const Connection& c) const {
  // A websocket message is one unit: one whole message of the largest size
  // allowed may always queue behind a wait.
  return c.transport == Transport::Ws ? std::max(max_in_, config_.ws_max_message + 1) : max_in_;
}

void Loop::resume_pipelines() {
  // The backlog in arrival order, each connection within its budget; only
  // the entries there now (one served in part goes to the back, for later).
  begin_phase();
  const std::size_t n = backlog_.size();
  std::size_t i = 0;
  for (; i < n && !turn_over_; ++i) {
    Connection& c = conns_.at(backlog_[i]);
    if (!c.in_backlog) continue;  // closed (the slot may be in use again)
    c.in_backlog = false;
    if (!c.open() || c.pending_input.empty() || !may_serve(c)) continue;
    std::string input = std::move(c.pending_input);
    c.pending_input.clear();
    consume_lines(c, input);  // pending input is always request lines
    if (!c.open()) continue;
    after_input(c);
    maybe_unthrottle(c);
  }
  backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(i));
  if (i < n) deferred_ += n - i;
}

void Loop::log_refusal(const Connection& c, const Outcome& outcome) {
  switch (outcome.refused) {
    case Refusal::None:
      return;
    case Refusal::TooManySessions:
      return warn_limited(refusal_limit_, c.session.addr + ": refused grace: --max-sessions (" +
                                              std::to_string(max_sessions_) +
                                              ") sessions are kept or reserved");
    case Refusal::MemoryFull:
      return warn_limited(memory_limit_, c.session.addr + ": refused a request: memory budget "
                                             "reached (--max-memory " +
                                             std::to_string(budget_.limit()) + " bytes, " +
                                             std::to_string(budget_.used()) + " in use)");
    case Refusal::LockLimit:
      return warn_limited(refusal_limit_,
                          c.session.addr + ": refused a lock: it holds --max-locks-per-connection (" +
                              std::to_string(config_.max_locks_per_connection) + ") locks");
    case Refusal::WaiterLimit:
      return warn_limited(refusal_limit_,
                          c.session.addr + ": refused a wait: --max-waiters (" +
                              std::to_string(config_.max_waiters) + ") or --max-waiters-per-lock (" +
                              std::to_string(config_.max_waiters_per_lock) + ") waits are queued");
    case Refusal::NoToken:
      return warn_limited(refusal_limit_, c.session.addr + ": refused session: getrandom: " +
                                              std::strerror(outcome.error));
  }
}

}  // namespace glockd

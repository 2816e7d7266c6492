// The request side of the loop: bytes to lines to the protocol, waits
// that block a connection's pipeline and the grants that unblock it, and
// what the protocol asks of the server (ServerView).
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"
#include "websocket.hpp"

namespace glockd {

using namespace loop_detail;

std::size_t Loop::connections_now() {
  // Take what the kernel has queued on each listener so a client that has
  // connected (but whose accept we have not seen yet) is counted.
  for (const Listener& l : listeners_) {
    for (;;) {
      const int fd = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      adopt(fd, l.transport);
    }
  }
  return open_;
}

std::string_view Loop::addr(ConnId conn) const { return conns_.at(conn).addr; }

std::string Loop::new_token() {
  unsigned char raw[16];
  std::size_t got = 0;
  while (got < sizeof raw) {
    // GRND_NONBLOCK: early in boot the pool may not be ready, and the loop
    // must not sleep on it; the client gets a Bad Request instead.
    const ssize_t n = ::getrandom(raw + got, sizeof raw - got, GRND_NONBLOCK);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (n < 0 && errno != EINTR) return random_errno_ = errno, std::string();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : raw) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}

void Loop::log_refusal(const Connection& c, Refusal why) {
  switch (why) {
    case Refusal::None:
      return;
    case Refusal::TooManySessions:
      return warn_limited(refusal_limit_, c.addr + ": refused grace: --max-sessions (" +
                                              std::to_string(max_sessions_) +
                                              ") sessions are kept or reserved");
    case Refusal::NoToken:
      return warn_limited(refusal_limit_, c.addr + ": refused session: getrandom: " +
                                              std::strerror(random_errno_));
  }
}

Session* Loop::detached(ConnId conn) {
  if (conn >= conns_.slots()) return nullptr;
  Connection& c = conns_.at(conn);
  return c.keep_detached ? &c.session : nullptr;
}

void Loop::forget_detached(ConnId conn) {
  Connection& c = conns_.at(conn);
  timers_.erase({c.deadline_ns, conn});
  c.keep_detached = false;
  --detached_;
  if (c.state == ConnState::Detached) conns_.free(c);
  // Still Closing: maybe_close() frees the slot once the socket is closed.
}

void Loop::expire_detached(Connection& c) {
  protocol_->expire_detached(c.session);
  if (!table_.grants().empty()) answer_grants();
  c.keep_detached = false;
  --detached_;
  if (c.state == ConnState::Detached) conns_.free(c);
}

void Loop::consume(Connection& c, std::string_view bytes) {
  // Bytes wait behind a blocked request, behind unsent answers over their
  // bound, and behind the requests queued meanwhile until resume_pipelines()
  // has run them: newer requests never overtake older ones.
  if (c.ws) consume_ws(c, bytes);
  else if (c.blocked || c.reading_paused || !c.pending_input.empty()) c.pending_input.append(bytes);
  else consume_lines(c, bytes);
  if (c.state != ConnState::Open) return;
  // Behind a wait (not behind unread answers: then the recv is off and what
  // the kernel had already taken is all that can come).
  if (c.blocked && c.pending_input.size() > pending_limit(c)) return refuse_queued_input(c);
  if (!c.out.empty()) queue_flush(c);
  if (!c.reading_paused && c.unsent() > kMaxUnsentOutput) pause_reading(c);
}

void Loop::refuse_queued_input(Connection& c) {
  // Too much queued behind a blocked wait. Reading must go on while a
  // connection waits: a peer that exits after writing more than we read
  // leaves its FIN behind that data in its own send queue, where no poll
  // of ours can see it, and its locks would outlive it by minutes. So, as
  // Redis does past client-query-buffer-limit, the connection is closed.
  ++queue_overflows_;
  warn_limited(queue_limit_, c.addr + ": more than " + std::to_string(pending_limit(c)) +
                                 " bytes of requests queued behind a wait; closed the "
                                 "connection (its locks are released)");
  c.pending_input.clear();
  constexpr std::string_view kWhy = "too many requests queued behind a wait";
  std::string& out = c.ws ? scratch_ : c.out;
  out.append("0 Bad Request: ").append(kWhy).push_back('\n');
  if (c.ws) {
    frame_answer(c);
    ws::encode_close(c.out, ws::kClosePolicy, kWhy);
    c.ws->phase = WebSocketState::Phase::Done;
  }
  terminate(c, "too many requests queued behind a wait", true);
}

std::size_t Loop::pending_limit(const Connection& c) const {
  // A websocket message is one unit: one whole message of the largest size
  // allowed may always queue behind a wait.
  return c.ws ? std::max(kMaxPendingInput, config_.ws_max_message + 1) : kMaxPendingInput;
}

void Loop::pause_reading(Connection& c) {
  // The peer reads slower than it asks: stop reading until it catches up.
  // A paused peer that hangs up must still lose its locks at once, so a
  // poll watches for its FIN or RST while the recv is off. (A peer that
  // exits without reading leaves unread answers, so its kernel sends RST.)
  c.reading_paused = true;
  if (c.recv_armed) cancel(c, Op::Recv);
  if (!c.hup_watch) arm_hangup_watch(c);
}

void Loop::arm_hangup_watch(Connection& c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_poll_add(s, c.fd, POLLRDHUP | POLLHUP | POLLERR);
  io_uring_sqe_set_data64(s, tag(Op::Hangup, c.session.id, c.gen));
  c.hup_watch = true;
}

void Loop::on_hangup(Connection& c, const io_uring_cqe& cqe) {
  c.hup_watch = false;
  if (c.state != ConnState::Open || !c.reading_paused) return;  // the recv watches again
  // Cancelled when reading resumed, but paused again before the cancel
  // landed: keep watching.
  if (cqe.res == -ECANCELED) return arm_hangup_watch(c);
  if (cqe.res < 0) return terminate(c, std::strerror(-cqe.res));
  if (cqe.res & (POLLERR | POLLHUP)) return terminate(c, "reset by the peer while paused");
  // A FIN: as for a peer that is read, answers already made still go out,
  // and what it sent that we have not read is dropped with its waits.
  terminate(c, "end of stream from the peer while paused", true);
}

void Loop::consume_lines(Connection& c, std::string_view text) {
  const std::size_t used = c.reader.feed(
      text,
      [&](std::string_view line) {
#ifdef GLOCKD_ECHO_CEILING
        // The benchmark's ceiling: same loop, fixed answer, no lock table.
        (void)line;
        c.out.append("1 Lock Get Success: echo\n");
        return true;
#else
        Outcome outcome;
        if (c.ws) {  // each answer is one text message
          outcome = protocol_->handle_line(c.session, line, scratch_);
          frame_answer(c);
        } else {
          outcome = protocol_->handle_line(c.session, line, c.out);
        }
        if (!table_.grants().empty()) answer_grants();
        if (outcome.refused != Refusal::None) log_refusal(c, outcome.refused);
        if (outcome.blocked) block(c, outcome.wait_ms);
        // Checked per request, not per read: a few bytes of `d` or `q` can
        // ask for megabytes of answer. The rest waits until the peer reads.
        return !outcome.blocked && c.unsent() <= kMaxUnsentOutput;
#endif
      },
      [&] {
        protocol_->overlong_line();
        warn_limited(overlong_limit_, c.addr + " sent a line over --max-line (" +
                                          std::to_string(config_.max_line) +
                                          " bytes); discarded it");
      });
  if (used < text.size()) c.pending_input.append(text.substr(used));
}

void Loop::frame_answer(Connection& c) {
  if (scratch_.empty()) return;
  // Lock and client names are opaque bytes; a text message must be UTF-8
  // (browsers fail the connection otherwise), so such answers go as binary.
  ws::encode(c.out, ws::valid_utf8(scratch_) ? ws::Opcode::Text : ws::Opcode::Binary, scratch_);
  scratch_.clear();
}

void Loop::maybe_resume_reading(Connection& c) {
  if (!c.reading_paused || c.unsent() > kMaxUnsentOutput / 2) return;
  c.reading_paused = false;
  if (c.hup_watch) cancel(c, Op::Hangup);
  if (!c.recv_armed) rearm_queue_.push_back(c.session.id);
  // Requests held back while the answers were over their bound go first.
  if (!c.blocked && !c.pending_input.empty()) resume_queue_.push_back(c.session.id);
}

void Loop::block(Connection& c, std::uint32_t wait_ms) {
  c.blocked = true;
  c.deadline_ns = now_ns() + static_cast<std::int64_t>(wait_ms) * 1'000'000;
  timers_.emplace(c.deadline_ns, c.session.id);
}

void Loop::unblock(Connection& c) {
  timers_.erase({c.deadline_ns, c.session.id});
  c.blocked = false;
  queue_flush(c);
  if (!c.pending_input.empty()) resume_queue_.push_back(c.session.id);
  else maybe_resume_reading(c);
}

void Loop::answer_grants() {
  // Waiters given their lock by a release: answer them and let their
  // pipelines go on (later, from resume_queue_, not from inside this call).
  for (const Grant& g : table_.grants()) {
    Connection& w = conns_.at(g.conn);
    protocol_->answer_grant(g, w.ws ? scratch_ : w.out);
    if (w.ws) frame_answer(w);
    unblock(w);
  }
  table_.grants().clear();
}

void Loop::expire_waits() {
  if (timers_.empty()) return;
  const std::int64_t now = now_ns();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const auto [when, id] = *timers_.begin();
    Connection& c = conns_.at(id);
    // A closing connection can have two timers: its drain and its grace.
    if (c.flush_on_close && when == c.drain_deadline_ns) {
      timers_.erase(timers_.begin());
      drain_timeout(c);
      continue;
    }
    if (c.keep_detached) {  // a dropped connection's grace period ended
      timers_.erase(timers_.begin());
      expire_detached(c);
      continue;
    }
    if (c.ws && c.ws->phase == WebSocketState::Phase::Http) {
      timers_.erase(timers_.begin());
      http_timeout(c);
      continue;
    }
    protocol_->expire_wait(c.session, c.ws ? scratch_ : c.out);
    if (c.ws) frame_answer(c);
    if (!table_.grants().empty()) answer_grants();  // a semaphore waiter behind it
    unblock(c);
  }
}

void Loop::resume_pipelines() {
  for (std::size_t i = 0; i < resume_queue_.size(); ++i) {  // grows while we go
    Connection& c = conns_.at(resume_queue_[i]);
    if (c.state != ConnState::Open || c.blocked || c.pending_input.empty()) continue;
    std::string input = std::move(c.pending_input);
    c.pending_input.clear();
    consume_lines(c, input);  // pending input is always request lines
    if (!c.out.empty()) queue_flush(c);
    if (!c.reading_paused && c.unsent() > kMaxUnsentOutput) pause_reading(c);
    maybe_resume_reading(c);
  }
  resume_queue_.clear();
}

}  // namespace glockd

// The end of connections and of the loop: terminate (locks released or
// kept for a grace period), close once nothing is in flight, and the
// graceful shutdown on SIGTERM/SIGINT/SIGQUIT (SIGHUP is only logged).
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;

void Loop::on_signal(const io_uring_cqe& cqe) {
  if (cqe.res == static_cast<int>(sizeof siginfo_)) {
    const int sig = static_cast<int>(siginfo_.ssi_signo);
    if (sig == SIGHUP) {
      // A sysadmin's reflex `kill -HUP` must not drop a fleet's locks; it
      // is the signal a later release will reload its certificates on.
      // Rate limited: a storm of them must not flood the log.
      std::uint64_t suppressed = 0;
      if (sighup_limit_.allow(suppressed))
        spdlog::info("received SIGHUP from pid {}: nothing to reload yet (SIGHUP will reload "
                     "certificates in a later release); still serving, every lock kept{}",
                     siginfo_.ssi_pid,
                     suppressed > 0 ? fmt::format(" ({} more not logged)", suppressed) : "");
      arm_signal();
      return;
    }
    spdlog::info("received {}: shutting down", strsignal(sig));
    begin_shutdown();
    return;
  }
  if (!stopping_) arm_signal();
}

void Loop::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  shutdown_deadline_ns_ = now_ns() + std::chrono::nanoseconds(kShutdownGrace).count();
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    if (!accept_armed_[i]) continue;
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, tag(Op::Accept, static_cast<std::uint32_t>(i), 0), 0);
    io_uring_sqe_set_data64(s, tag(Op::Close, kNoSlot, 0));
  }
  for (std::size_t i = 0; i < conns_.slots(); ++i) {
    Connection& c = conns_.at(static_cast<ConnId>(i));
    if (c.state == ConnState::Open) terminate(c, "server shutting down");
    if (c.keep_detached) {  // shutting down: nobody can resume now
      timers_.erase({c.deadline_ns, c.session.id});
      expire_detached(c);
    }
    if (c.state == ConnState::Closing) {
      // Answers not yet sent are dropped at shutdown: a peer that does not
      // read must not hold the exit up.
      end_drain(c);
      if (c.send_inflight) cancel(c, Op::Send);
      maybe_close(c);
    }
  }
}

void Loop::flush_closing(Connection& c) {
  if (c.send_inflight) return;
  if (!c.out.empty()) {
    c.sending.swap(c.out);
    c.out.clear();
    c.sent = 0;
    return submit_send(c);
  }
  // All sent. close() with the peer's bytes unread would reset the
  // connection, and the reset destroys answers the kernel has not delivered
  // yet; so, as web servers do, send FIN and read (and drop) what the peer
  // still sends until its own FIN, within the drain deadline.
  if (c.peer_eof) return end_drain(c);
  if (!c.lingering) {
    ::shutdown(c.fd, SHUT_WR);
    c.lingering = true;
  }
  if (!c.recv_armed) arm_recv(c);
}

void Loop::on_closing_recv(Connection& c, int res) {
  // Input after the close is dropped (its buffer is back already).
  if (res == -ECANCELED) return;
  if (res == 0 || (res < 0 && res != -ENOBUFS)) {
    c.peer_eof = true;  // nothing more will come
    if (c.lingering) end_drain(c);
    return;
  }
  if (!c.recv_armed && c.flush_on_close) rearm_queue_.push_back(c.session.id);
}

void Loop::terminate(Connection& c, const char* why, bool flush) {
  if (c.state != ConnState::Open) return;
  c.state = ConnState::Closing;
  // Answers to what a half-closed peer sent still go out; after an error
  // or at shutdown they are dropped.
  c.flush_on_close = flush && !stopping_;
  if (c.flush_on_close) flush_closing(c);
  --open_;
  --open_by_transport_[static_cast<int>(c.transport)];
  // Whatever deadline it had (a wait, an HTTP head) no longer applies.
  timers_.erase({c.deadline_ns, c.session.id});
  if (c.flush_on_close) {  // a peer that never reads must not keep its slot
    c.drain_deadline_ns = now_ns() + std::int64_t{config_.drain_timeout_seconds} * 1'000'000'000;
    timers_.emplace(c.drain_deadline_ns, c.session.id);
  }
  c.blocked = false;
  // As the original prints it: "ADDR disconnected", then one line per orphan.
  if (config_.verbose) spdlog::debug("{} disconnected", c.addr);
  if (protocol_->disconnect(c.session)) {
    // Dropped with `grace`: its locks wait for a `resume` until the deadline.
    c.keep_detached = true;
    ++detached_;
    c.deadline_ns = now_ns() + static_cast<std::int64_t>(c.session.grace_ms) * 1'000'000;
    timers_.emplace(c.deadline_ns, c.session.id);
    if (stopping_) {
      timers_.erase({c.deadline_ns, c.session.id});
      expire_detached(c);
    }
  }
  if (!table_.grants().empty()) answer_grants();
  if (config_.verbose) spdlog::debug("{} closed: {}", c.addr, why);
  // Draining: keep reading (and dropping) what the peer still sends, so the
  // final close() finds nothing unread and sends FIN, not RST.
  if (c.flush_on_close && !c.recv_armed && !c.peer_eof) arm_recv(c);
  else if (!c.flush_on_close && c.recv_armed) cancel(c, Op::Recv);
  if (c.hup_watch) cancel(c, Op::Hangup);
}

void Loop::end_drain(Connection& c) {
  if (!c.flush_on_close) return;
  c.flush_on_close = false;
  timers_.erase({c.drain_deadline_ns, c.session.id});
  if (c.recv_armed) cancel(c, Op::Recv);
}

void Loop::drain_timeout(Connection& c) {
  warn_limited(drain_limit_, c.addr + ": did not read its last answers within " +
                                 std::to_string(config_.drain_timeout_seconds) +
                                 " s of closing (--drain-timeout); dropped them");
  ++drain_timeouts_;
  c.flush_on_close = false;  // its timer is the one being expired
  if (c.send_inflight) cancel(c, Op::Send);
  if (c.recv_armed) cancel(c, Op::Recv);
  maybe_close(c);
}

void Loop::maybe_close(Connection& c) {
  if (c.state != ConnState::Closing || !c.idle() || c.flush_on_close) return;
  // Nothing of ours is in flight: the descriptor and the slot can go.
  io_uring_sqe* s = sqe();
  io_uring_prep_close(s, c.fd);
  io_uring_sqe_set_data64(s, tag(Op::Close, kNoSlot, 0));
  c.fd = -1;
  if (c.keep_detached) c.state = ConnState::Detached;
  else conns_.free(c);
}

}  // namespace glockd

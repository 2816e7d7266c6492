// The end of connections and of the loop: terminate (locks released, or
// kept for a grace period), drain the last answers, close once nothing is
// in flight; and the graceful shutdown on SIGTERM/SIGINT/SIGQUIT (SIGHUP
// reloads the TLS certificates).
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cassert>
#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;
using State = Connection::State;

void Loop::arm_signal() {
  ring_.read(signal_fd_.get(), &siginfo_, sizeof siginfo_, Tag{Op::Signal});
}

void Loop::on_signal(const io_uring_cqe& cqe) {
  if (cqe.res == static_cast<int>(sizeof siginfo_)) {
    const int sig = static_cast<int>(siginfo_.ssi_signo);
    if (sig == SIGHUP) {
      // `systemctl reload`: the TLS certificates are read again; nothing
      // else changes, every lock is kept (loop_tls.cpp).
      reload_tls(siginfo_.ssi_pid);
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
  for (std::size_t i = 0; i < listeners_.size(); ++i)
    if (accept_armed_[i])
      ring_.cancel(Tag{Op::Accept, static_cast<std::uint32_t>(i)}, Tag{Op::Close});
  for (std::size_t i = 0; i < conns_.slots(); ++i) {
    Connection& c = conns_.at(static_cast<ConnId>(i));
    if (c.open()) terminate(c, "server shutting down");
    if (c.session.kept) {  // shutting down: nobody can resume now
      disarm_deadline(c, Deadline::Grace);
      expire_kept(c);
    }
    // Answers not yet sent are dropped at shutdown: a peer that does not
    // read must not hold the exit up.
    if (c.state() == State::Draining) end_drain(c);
    if (c.state() == State::Closing && c.in_flight().send != 0) cancel(c, Op::Send);
    maybe_close(c);
  }
}

void Loop::terminate(Connection& c, const char* why, bool deliver_answers) {
  assert(c.open());
  --open_;
  --open_by_transport_[static_cast<int>(c.transport)];
  // Whatever deadline it had (a wait, an HTTP head) no longer applies.
  disarm_deadline(c, Deadline::Wait);
  disarm_deadline(c, Deadline::Framing);
  disarm_deadline(c, Deadline::Handshake);
  if (!c.stream().shared()) --open_tls_;
  if (c.in_flight().hangup != 0) cancel(c, Op::Hangup);
  // Requests not served and a message not finished will never be: their
  // memory goes now, not when the drain ends.
  std::string().swap(c.pending_input);
  if (!c.framing().transparent()) c.framing().discard();
  // Answers to what a half-closed peer sent still go out; after an error
  // or at shutdown they are dropped.
  if (deliver_answers && !stopping_) {
    c.drain();
    // A peer that never reads must not keep its slot.
    arm_deadline(c, Deadline::Drain, after_ms(std::int64_t{config_.drain_timeout_seconds} * 1000));
    drain_step(c);
    // Keep reading (and dropping) what the peer still sends, so the final
    // close() finds nothing unread and sends FIN, not RST.
    if (c.state() == State::Draining && !c.peer_eof && c.in_flight().recv == 0) arm_recv(c);
  } else {
    c.close();
    if (c.in_flight().recv != 0) cancel(c, Op::Recv);
  }
  // As the original prints it: "ADDR disconnected", then one line per orphan.
  if (config_.verbose) spdlog::debug("{} disconnected", c.session.addr);
  const Outcome gone = protocol_->disconnect(c.session);
  if (gone.kept) {
    // Dropped with `grace`: its locks wait for a `resume` until the deadline.
    ++kept_sessions_;
    if (stopping_) expire_kept(c);
    else arm_deadline(c, Deadline::Grace, after_ms(c.session.grace_ms));
  }
  apply(c, gone);
  account(c);
  if (config_.verbose) spdlog::debug("{} closed: {}", c.session.addr, why);
}

void Loop::drain_step(Connection& c) {
  assert(c.state() == State::Draining);
  if (c.in_flight().send != 0) return;
  if (c.take_output()) return send_rest(c);
  // TLS: our close_notify goes before our FIN (once).
  if (c.take_close()) return send_rest(c);
  // All sent. close() with the peer's bytes unread would reset the
  // connection, and the reset destroys answers the kernel has not delivered
  // yet; so, as web servers do, send FIN and read (and drop) what the peer
  // still sends until its own FIN, within the drain deadline.
  if (c.peer_eof) return end_drain(c);
  if (!c.fin_sent) {
    ::shutdown(c.fd, SHUT_WR);
    c.fin_sent = true;
  }
  if (c.in_flight().recv == 0) arm_recv(c);
}

void Loop::on_draining_recv(Connection& c, int res) {
  // Input after the close is dropped (its buffer is back already).
  if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
    c.peer_eof = true;  // nothing more will come
    if (c.fin_sent) end_drain(c);
    return;
  }
  if (c.in_flight().recv == 0) rearm_queue_.push_back(c.session.id);
}

void Loop::end_drain(Connection& c) {
  assert(c.state() == State::Draining);
  disarm_deadline(c, Deadline::Drain);
  c.close();
  if (c.in_flight().recv != 0) cancel(c, Op::Recv);
}

void Loop::drain_timeout(Connection& c) {
  warn_limited(drain_limit_, c.session.addr + ": did not read its last answers within " +
                                 std::to_string(config_.drain_timeout_seconds) +
                                 " s of closing (--drain-timeout); dropped them");
  ++drain_timeouts_;
  end_drain(c);
  if (c.in_flight().send != 0) cancel(c, Op::Send);
  maybe_close(c);
}

void Loop::maybe_close(Connection& c) {
  if (c.state() != State::Closing || !c.idle()) return;
  // Nothing of ours is in flight: the descriptor and the slot can go.
  ring_.close(c.fd);
  c.fd = -1;
  c.drop_stream();  // a kept session keeps its locks, not its TLS state
  if (c.session.kept) c.closed();  // -> Detached, until resumed or expired
  else free_slot(c);
}

void Loop::expire_kept(Connection& c) {
  // The grace period of a dropped connection ended without a resume.
  apply(c, protocol_->expire_detached(c.session));
  --kept_sessions_;
  if (c.state() == State::Detached) free_slot(c);
}

void Loop::forget_kept(Connection& c) {
  // Another connection resumed this session: its locks are that one's now.
  assert(!c.session.kept);
  disarm_deadline(c, Deadline::Grace);
  --kept_sessions_;
  if (c.state() == State::Detached) free_slot(c);
  // Still Closing: maybe_close() frees the slot once the socket is closed.
}

void Loop::free_slot(Connection& c) {
  budget_.rebuffer(c.accounted, 0);
  budget_.inspection_done(c.session.id);
  protocol_->forget(c.session);
  conns_.free(c);
}

}  // namespace glockd

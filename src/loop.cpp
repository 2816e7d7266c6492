// Loop implementation: ring setup, the completion dispatch and one handler
// per operation kind (after liburing's examples/proxy.c).
#include "loop.hpp"
#include "crash.hpp"
#include "loop_internal.hpp"
#include "verbose_events.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

namespace glockd {

using namespace loop_detail;

Loop::Loop(const Config& config, std::vector<Listener> listeners, TokenMark* token_mark)
    : config_(config),
      listeners_(std::move(listeners)),
      accept_armed_(listeners_.size(), false),
      token_mark_(token_mark),
      // Fencing tokens stay above every token of an earlier run.
      table_(clock_token(), WaitLimits{config.max_waiters_per_lock, config.max_waiters}),
      conns_(config.max_line) {
  if (config_.verbose) events_ = std::make_unique<VerboseEvents>(*this);
  protocol_ = std::make_unique<Protocol>(table_, registry_, stats_,
                                         Features{config_.dump, config_.registry}, *this,
                                         events_.get());
  retry_delay_.tv_nsec = 100 * 1000 * 1000;
  started_ns_ = now_ns();
}

Loop::~Loop() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (buf_ring_) ::munmap(buf_ring_, kBufCount * sizeof(io_uring_buf));
  for (std::size_t i = 0; i < conns_.slots(); ++i)
    if (conns_.at(static_cast<ConnId>(i)).fd >= 0) ::close(conns_.at(static_cast<ConnId>(i)).fd);
}

std::uint64_t Loop::tag(Op op, std::uint32_t slot, std::uint32_t gen) {
  return (static_cast<std::uint64_t>(op) << 56) |
         (static_cast<std::uint64_t>(gen & 0xffffff) << 32) | slot;
}

io_uring_sqe* Loop::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (s == nullptr) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  assert(s != nullptr);
  return s;
}

void Loop::arm_accept(std::size_t i) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listeners_[i].fd.get(), nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, tag(Op::Accept, static_cast<std::uint32_t>(i), 0));
  accept_armed_[i] = true;
}

void Loop::arm_recv(Connection& c) {
  io_uring_sqe* s = sqe();
  if (recv_multishot_)
    io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  else
    io_uring_prep_recv(s, c.fd, nullptr, kBufSize, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufGroup;
  io_uring_sqe_set_data64(s, tag(Op::Recv, c.session.id, c.gen));
  c.recv_armed = true;
}

void Loop::cancel(Connection& c, Op op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, tag(op, c.session.id, c.gen), 0);
  io_uring_sqe_set_data64(s, tag(Op::Cancel, c.session.id, c.gen));
  ++c.cancels;
}

void Loop::arm_signal() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, signal_fd_.get(), &siginfo_, sizeof siginfo_, 0);
  io_uring_sqe_set_data64(s, tag(Op::Signal, kNoSlot, 0));
}

void Loop::arm_retry_timer() {
  if (accept_retry_pending_) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &retry_delay_, 0, 0);
  io_uring_sqe_set_data64(s, tag(Op::Timer, kNoSlot, 0));
  accept_retry_pending_ = true;
}

void Loop::submit_send(Connection& c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, c.sending.data() + c.sent, c.sending.size() - c.sent,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(Op::Send, c.session.id, c.gen));
  c.send_inflight = true;
}

int Loop::run() {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    arm_accept(i);
    spdlog::info("listening on {} ({})", listeners_[i].where,
                 transport_name(listeners_[i].transport));
  }
  arm_signal();
  io_uring_submit(&ring_);
  spdlog::info("ready: glockd {} (io_uring{})", GLOCKD_VERSION,
               (ring_flags_ & IORING_SETUP_DEFER_TASKRUN) ? ", defer-taskrun" : "");
  if (on_ready_) on_ready_();

  std::array<io_uring_cqe*, kBatch> batch{};
  while (!stopping_ || conns_.in_use() > 0 || accepts_armed()) {
    if (stopping_) {
      // Shutdown is bounded: whatever is still in flight after kShutdownGrace
      // (a peer that never reads, a slow cancel) is left to the ring's teardown.
      const std::int64_t left = shutdown_deadline_ns_ - now_ns();
      if (left <= 0) {
        spdlog::warn("shutdown: {} connections still busy after {} ms; exiting anyway",
                     conns_.in_use(), kShutdownGrace.count());
        break;
      }
      __kernel_timespec ts{left / 1'000'000'000, left % 1'000'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    } else if (!timers_.empty()) {
      // Sleep no longer than the earliest waiter's deadline.
      const std::int64_t wait = std::max<std::int64_t>(0, timers_.begin()->first - now_ns());
      __kernel_timespec ts{wait / 1'000'000'000, wait % 1'000'000'000};
      io_uring_cqe* cqe = nullptr;
      const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        spdlog::error("io_uring_submit_and_wait_timeout: {}", std::strerror(-rc));
        return 1;
      }
    } else {
      const int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        spdlog::error("io_uring_submit_and_wait: {}", std::strerror(-rc));
        return 1;
      }
    }
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&ring_, batch.data(), kBatch);
      if (n == 0) break;
      // Accepts first: a connection the kernel accepted in this batch is
      // counted before any `q` in the same batch is answered.
      for (unsigned i = 0; i < n; ++i)
        if (static_cast<Op>(batch[i]->user_data >> 56) == Op::Accept) handle_cqe(*batch[i]);
      for (unsigned i = 0; i < n; ++i)
        if (static_cast<Op>(batch[i]->user_data >> 56) != Op::Accept) handle_cqe(*batch[i]);
      io_uring_cq_advance(&ring_, n);
      if (n < kBatch) break;
    }
    end_of_turn();
  }
  io_uring_submit(&ring_);  // the last close()s
  // Close the listeners ourselves, now that their accepts are cancelled: the
  // ring's teardown drops its file references later, asynchronously, and a
  // restart would find the port still bound.
  for (const Listener& l : listeners_)
    if (!l.unix_path.empty()) remove_if_ours(l.unix_path);
  listeners_.clear();
  spdlog::info("stopped");
  return 0;
}

bool Loop::accepts_armed() const {
  return std::find(accept_armed_.begin(), accept_armed_.end(), true) != accept_armed_.end();
}

void Loop::handle_cqe(const io_uring_cqe& cqe) {
  const Op op = static_cast<Op>(cqe.user_data >> 56);
  const std::uint32_t slot = static_cast<std::uint32_t>(cqe.user_data);
  const std::uint32_t gen = static_cast<std::uint32_t>(cqe.user_data >> 32) & 0xffffff;
  switch (op) {
    case Op::Accept:
      return on_accept(slot, cqe);
    case Op::Signal:
      return on_signal(cqe);
    case Op::Timer:
      accept_retry_pending_ = false;
      if (!stopping_)
        for (std::size_t i = 0; i < listeners_.size(); ++i)
          if (!accept_armed_[i]) arm_accept(i);
      return;
    case Op::Close:
      return;
    case Op::Recv:
    case Op::Send:
    case Op::Hangup:
    case Op::Cancel: {
      Connection& c = conns_.at(slot);
      // A completion for a connection that has since been recycled.
      if ((c.gen & 0xffffff) != gen || c.state == ConnState::Free) {
        if (cqe.flags & IORING_CQE_F_BUFFER)
          return_buffer(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
        return;
      }
      if (op == Op::Recv) on_recv(c, cqe);
      else if (op == Op::Send) on_send(c, cqe);
      else if (op == Op::Hangup) on_hangup(c, cqe);
      else --c.cancels;
      maybe_close(c);
      return;
    }
  }
}

void Loop::on_recv(Connection& c, const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) c.recv_armed = false;
  if (cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) {
    const auto bid = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    bytes_in_ += static_cast<std::uint64_t>(cqe.res);
    if (c.state == ConnState::Open)
      consume(c, std::string_view(buffers_.get() + std::size_t{bid} * kBufSize,
                                  static_cast<std::size_t>(cqe.res)));
    return_buffer(bid);
  } else if (cqe.flags & IORING_CQE_F_BUFFER) {
    return_buffer(static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
  }
  if (c.state == ConnState::Closing) return on_closing_recv(c, cqe.res);
  if (c.state != ConnState::Open) return;
  // The peer finished sending: answer what it sent, then close.
  if (cqe.res == 0) {
    c.peer_eof = true;
    return terminate(c, "end of stream from the peer", true);
  }
  if (cqe.res < 0) {
    switch (-cqe.res) {
      case ENOBUFS:  // the pool ran dry for a moment: not the peer's fault
      case ECANCELED:
        break;
      case EINVAL:
        if (recv_multishot_) {  // kernel without multishot recv (< 6.0)
          recv_multishot_ = false;
          spdlog::info("kernel lacks multishot recv: using one recv per read");
          break;
        }
        return terminate(c, std::strerror(-cqe.res));
      default:
        return terminate(c, std::strerror(-cqe.res));
    }
  }
  if (!c.recv_armed && !c.reading_paused) rearm_queue_.push_back(c.session.id);
}

void Loop::queue_flush(Connection& c) {
  if (c.queued_for_flush || c.send_inflight) return;
  c.queued_for_flush = true;
  flush_queue_.push_back(c.session.id);
}

void Loop::on_send(Connection& c, const io_uring_cqe& cqe) {
  c.send_inflight = false;
  if (c.state == ConnState::Free || (c.state == ConnState::Closing && !c.flush_on_close)) return;
  if (cqe.res < 0) {
    if (c.state == ConnState::Closing) return end_drain(c);
    if (cqe.res == -EAGAIN || cqe.res == -EINTR) {
      submit_send(c);
      return;
    }
    return terminate(c, std::strerror(-cqe.res));
  }
  c.sent += static_cast<std::size_t>(cqe.res);
  bytes_out_ += static_cast<std::uint64_t>(cqe.res);
  if (c.sent < c.sending.size()) {  // short send: the rest goes next
    submit_send(c);
    return;
  }
  c.sending.clear();
  c.sent = 0;
  if (c.state == ConnState::Closing) {
    flush_closing(c);
    return;
  }
  if (!c.out.empty()) queue_flush(c);
  maybe_resume_reading(c);
}

void Loop::return_buffer(std::uint16_t bid) {
  io_uring_buf_ring_add(buf_ring_, buffers_.get() + std::size_t{bid} * kBufSize, kBufSize, bid,
                        io_uring_buf_ring_mask(kBufCount), static_cast<int>(buffers_returned_));
  ++buffers_returned_;
}

void Loop::end_of_turn() {
  expire_waits();
  resume_pipelines();
  if (buffers_returned_ > 0) {
    io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buffers_returned_));
    buffers_returned_ = 0;
  }
  // One send per connection per turn, carrying every answer of the batch.
  for (ConnId id : flush_queue_) {
    Connection& c = conns_.at(id);
    c.queued_for_flush = false;
    if (c.state != ConnState::Open || c.send_inflight || c.out.empty()) continue;
    c.sending.swap(c.out);
    c.out.clear();
    c.sent = 0;
    submit_send(c);
  }
  flush_queue_.clear();
  // Re-arm recvs that ended (ENOBUFS, or single-shot mode) now that the
  // buffers of this batch are back in the ring.
  for (ConnId id : rearm_queue_) {
    Connection& c = conns_.at(id);
    if (c.recv_armed) continue;
    if ((c.state == ConnState::Open && !c.reading_paused) ||
        (c.state == ConnState::Closing && c.flush_on_close))
      arm_recv(c);
  }
  rearm_queue_.clear();
}

void Loop::warn_limited(RateLimit& limit, const std::string& message) {
  std::uint64_t suppressed = 0;
  if (!limit.allow(suppressed)) return;
  if (suppressed > 0)
    spdlog::warn("{} ({} similar events not logged)", message, suppressed);
  else
    spdlog::warn("{}", message);
}

}  // namespace glockd

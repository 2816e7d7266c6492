// Loop: the run loop, the completion dispatch (one handler per operation
// kind, after liburing's examples/proxy.c), deadlines and the end of a turn.
#include "loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "crash.hpp"
#include "loop_internal.hpp"
#include "verbose_events.hpp"

namespace glockd {

using namespace loop_detail;
using State = Connection::State;

namespace {

// Session tokens from the kernel's random pool.
std::string random_token(int& error) {
  unsigned char raw[16];
  std::size_t got = 0;
  while (got < sizeof raw) {
    // GRND_NONBLOCK: early in boot the pool may not be ready, and the loop
    // must not sleep on it; the client gets a Bad Request instead.
    const ssize_t n = ::getrandom(raw + got, sizeof raw - got, GRND_NONBLOCK);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (n < 0 && errno != EINTR) return error = errno, std::string();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : raw) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  return token;
}

// The lock table's hash key, drawn once at start: from getrandom, else
// (the pool not ready early in boot, or getrandom filtered) from
// /dev/urandom. Only when neither gives 16 bytes is the start refused:
// Loop::init() reports `error`. The key is never logged.
HashKey random_hash_key(std::string& error) {
  // crypto_shorthash needs no sodium_init() (libsodium 1.0.18: it calls the
  // pure siphash24 reference code, no state, no CPU dispatch), and
  // sodium_init() would spin on a getrandom that answers EAGAIN.
  HashKey key;
  std::size_t got = 0;
  while (got < key.bytes.size()) {
    const ssize_t n =
        ::getrandom(key.bytes.data() + got, key.bytes.size() - got, GRND_NONBLOCK);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  if (got == key.bytes.size()) return key;
  // Early in boot the pool may not be initialised yet (EAGAIN): the key
  // then comes from /dev/urandom, which never blocks and is still unknown
  // to any client, which is all that hash flooding needs.
  const int saved = errno;
  UniqueFd urandom(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  while (urandom && got < key.bytes.size()) {
    const ssize_t n = ::read(urandom.get(), key.bytes.data() + got, key.bytes.size() - got);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (n == 0 || errno != EINTR) break;
  }
  if (got == key.bytes.size()) {
    spdlog::warn("getrandom: {}: the lock table's hash key comes from /dev/urandom",
                 std::strerror(saved));
    return key;
  }
  error = std::string("cannot draw the lock table's hash key: getrandom: ") +
          std::strerror(saved) + ", and /dev/urandom: " + std::strerror(errno);
  return {};
}

}  // namespace

Loop::Loop(const Config& config, std::vector<Listener> listeners, TokenMark* token_mark,
           LineHandler* handler)
    : config_(config),
      listeners_(std::move(listeners)),
      accept_armed_(listeners_.size(), false),
      token_mark_(token_mark),
      // Fencing tokens stay above every token of an earlier run.
      table_(clock_token(), WaitLimits{config.max_waiters_per_lock, config.max_waiters},
             random_hash_key(start_error_)),
      conns_(config.max_line),
      budget_(config.max_memory, table_),
      max_out_(config.max_output_per_connection),
      max_in_(config.max_input_per_connection),
      read_ahead_(std::min(max_in_, kReadAhead)) {
  protocol_ = std::make_unique<Protocol>(table_, registry_, stats_,
                                         Features{config_.dump, config_.registry}, &random_token);
  if (config_.verbose) {
    events_ = std::make_unique<VerboseEvents>(*protocol_);
    protocol_->set_events(events_.get());
  }
  handler_ = handler != nullptr ? handler : protocol_.get();
  retry_delay_.tv_nsec = 100 * 1000 * 1000;
  started_ns_ = now_ns();
}

Loop::~Loop() {
  for (std::size_t i = 0; i < conns_.slots(); ++i)
    if (conns_.at(static_cast<ConnId>(i)).fd >= 0) ::close(conns_.at(static_cast<ConnId>(i)).fd);
}

int Loop::run() {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    arm_accept(i);
    spdlog::info("listening on {} ({})", listeners_[i].where,
                 transport_name(listeners_[i].transport));
  }
  arm_signal();
  ring_.submit();
  spdlog::info("ready: glockd {} (io_uring{})", GLOCKD_VERSION,
               ring_.defer_taskrun() ? ", defer-taskrun" : "");
  if (on_ready_) on_ready_();

  while (!stopping_ || conns_.in_use() > 0 || accepts_armed()) {
    std::int64_t timeout = -1;
    if (stopping_) {
      // Shutdown is bounded: whatever is still in flight after kShutdownGrace
      // (a peer that never reads, a slow cancel) is left to the ring's teardown.
      timeout = shutdown_deadline_ns_ - now_ns();
      if (timeout <= 0) {
        spdlog::warn("shutdown: {} connections still busy after {} ms; exiting anyway",
                     conns_.in_use(), kShutdownGrace.count());
        break;
      }
    } else if (!backlog_.empty() || !handshake_backlog_.empty()) {
      timeout = 0;  // requests (handshakes) wait their turn: look for completions, then serve them
    } else {
      // About to sleep: give back what a burst left behind, and sleep no
      // longer than the earliest deadline.
      std::int64_t wake = maybe_trim();
      if (!deadlines_.empty() && (wake < 0 || std::get<0>(*deadlines_.begin()) < wake))
        wake = std::get<0>(*deadlines_.begin());
      if (wake >= 0) timeout = std::max<std::int64_t>(0, wake - now_ns());
    }
    if (const int rc = ring_.wait(timeout); rc < 0 && !stopping_) {
      spdlog::error("io_uring_enter: {}", std::strerror(-rc));
      return 1;
    }
    ++turn_;
    handshake_spent_ns_ = 0;
    begin_phase();
    // Not cut by the turn's time slice: a completion left in the queue
    // keeps its receive buffer from everyone (the buffers are shared), and
    // a turn's completions are bounded by those buffers anyway.
    ring_.for_each_completion([this](const io_uring_cqe& cqe) { handle_cqe(cqe); });
    end_of_turn();
  }
  ring_.submit();  // the last close()s
  // Close the listeners ourselves, now that their accepts are cancelled: the
  // ring's teardown drops its file references later, asynchronously, and a
  // restart would find the port still bound.
  for (const Listener& l : listeners_)
    if (!l.unix_path.empty()) remove_if_ours(l.unix_path);
  listeners_.clear();
  spdlog::info("stopped");
  return 0;
}

void Loop::handle_cqe(const io_uring_cqe& cqe) {
  const Tag tag = Tag::unpack(cqe.user_data);
  switch (tag.op) {
    case Op::Accept:
      on_accept(tag.slot, cqe);
      break;
    case Op::Signal:
      on_signal(cqe);
      break;
    case Op::Timer:
      on_retry_timer();
      break;
    case Op::Close:
      return;
    case Op::Recv:
    case Op::Send:
    case Op::Hangup:
    case Op::Cancel: {
      Connection& c = conns_.at(tag.slot);
      // A completion for a connection that has since been recycled.
      if (!tag.same_gen(c.gen) || c.state() == State::Free) {
        ring_.give_back(cqe);
        return;
      }
      if (tag.op == Op::Recv) on_recv(c, cqe);
      else if (tag.op == Op::Send) on_send(c, cqe);
      else if (tag.op == Op::Hangup) on_hangup(c, cqe);
      else c.cancel_ended();
      maybe_close(c);
      break;
    }
  }
}

void Loop::arm_recv(Connection& c) {
  ring_.recv(c.fd, Tag{Op::Recv, c.session.id, c.gen});
  c.recv_armed();
}

void Loop::arm_hangup(Connection& c) {
  ring_.poll_hangup(c.fd, Tag{Op::Hangup, c.session.id, c.gen});
  c.hangup_armed();
}

void Loop::cancel(Connection& c, Op op) {
  ring_.cancel(Tag{op, c.session.id, c.gen}, Tag{Op::Cancel, c.session.id, c.gen});
  c.cancel_started();
}

void Loop::send_rest(Connection& c) {
  ring_.send(c.fd, c.send_rest(), Tag{Op::Send, c.session.id, c.gen});
  c.send_started();
}

void Loop::on_recv(Connection& c, const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) c.recv_ended();
  const std::string_view bytes = ring_.received(cqe);
  bytes_in_ += bytes.size();
  if (c.open() && !bytes.empty()) on_input(c, bytes);
  ring_.give_back(cqe);
  if (c.state() == State::Draining) return on_draining_recv(c, cqe.res);
  if (!c.open()) return;
  // The peer finished sending: answer what it sent, then close.
  if (cqe.res == 0) {
    c.peer_eof = true;
    serve_queued_now(c);  // `printf '...' | nc -N`: every request is answered
    if (c.open()) terminate(c, "end of stream from the peer", true);
    return;
  }
  if (cqe.res < 0) {
    switch (-cqe.res) {
      case ENOBUFS:  // the pool ran dry for a moment: not the peer's fault
      case ECANCELED:
        break;
      case EINVAL:
        if (ring_.fall_back_to_single_recv()) {  // kernel without multishot recv (< 6.0)
          spdlog::info("kernel lacks multishot recv: using one recv per read");
          break;
        }
        return terminate(c, std::strerror(-cqe.res));
      default:
        return terminate(c, std::strerror(-cqe.res));
    }
  }
  if (c.in_flight().recv == 0 && c.state() != State::Throttled)
    rearm_queue_.push_back(c.session.id);
}

void Loop::on_send(Connection& c, const io_uring_cqe& cqe) {
  c.send_ended();
  if (!c.open() && c.state() != State::Draining) return;
  if (cqe.res < 0) {
    if (c.state() == State::Draining) return end_drain(c);
    if (cqe.res == -EAGAIN || cqe.res == -EINTR) return send_rest(c);
    return terminate(c, std::strerror(-cqe.res));
  }
  c.sent += static_cast<std::size_t>(cqe.res);
  bytes_out_ += static_cast<std::uint64_t>(cqe.res);
  if (!c.send_rest().empty()) return send_rest(c);  // short send: the rest goes next
  if (c.state() == State::Draining) return drain_step(c);
  // Answers made meanwhile, or a stream's own bytes (a TLS key update).
  if (!c.out.empty() || (!c.stream().shared() && c.stream().has_output())) queue_flush(c);
  // A burst's buffers are not kept (the sum of their sizes may not change,
  // so account() would not look).
  if (c.sending.capacity() > kKeepBuffer || c.out.capacity() > kKeepBuffer) release_buffers(c);
  maybe_unthrottle(c);
  schedule(c);  // requests held back while its answers were over their bound
  account(c);
}

void Loop::on_hangup(Connection& c, const io_uring_cqe& cqe) {
  c.hangup_ended();
  if (c.state() != State::Throttled) return;  // the recv watches again
  // Cancelled when reading resumed, but throttled again before the cancel
  // landed: keep watching.
  if (cqe.res == -ECANCELED) return c.fin_seen ? void() : arm_hangup(c);
  if (cqe.res < 0) return terminate(c, std::strerror(-cqe.res));
  if (cqe.res & (POLLERR | POLLHUP)) return terminate(c, "reset by the peer while paused");
  // A FIN. Paused only while its queue is served (it reads its answers),
  // the rest of what it sent is read and answered as usual: reading
  // resumes with the queue, and then reads the end of stream.
  if (!c.waiting() && c.unsent() <= max_out_) {
    c.fin_seen = true;
    return;
  }
  // Not reading its answers, or gone behind a wait: answers already made
  // still go out, and what it sent that we have not read is dropped.
  terminate(c, "end of stream from the peer while paused", true);
}

void Loop::queue_flush(Connection& c) {
  if (c.queued_for_flush || c.in_flight().send != 0) return;
  c.queued_for_flush = true;
  flush_queue_.push_back(c.session.id);
}

void Loop::arm_deadline(Connection& c, Deadline d, std::int64_t at_ns) {
  std::int64_t& slot = c.deadlines[static_cast<std::size_t>(d)];
  assert(slot == 0);
  slot = at_ns;
  deadlines_.emplace(at_ns, c.session.id, d);
}

void Loop::disarm_deadline(Connection& c, Deadline d) {
  std::int64_t& slot = c.deadlines[static_cast<std::size_t>(d)];
  if (slot == 0) return;
  deadlines_.erase({slot, c.session.id, d});
  slot = 0;
}

void Loop::expire_deadlines() {
  if (deadlines_.empty()) return;
  const std::int64_t now = now_ns();
  while (!deadlines_.empty() && std::get<0>(*deadlines_.begin()) <= now) {
    const auto [when, id, d] = *deadlines_.begin();
    Connection& c = conns_.at(id);
    disarm_deadline(c, d);
    on_deadline(c, d);
  }
}

void Loop::on_deadline(Connection& c, Deadline d) {
  switch (d) {
    case Deadline::Framing:
      return framing_deadline(c);
    case Deadline::Wait: {
      Outcome expired;
      c.answer([&](std::string& out) { expired = protocol_->expire_wait(c.session, out); });
      apply(c, expired);  // a semaphore waiter behind it may have been granted
      return wait_ended(c);
    }
    case Deadline::Drain:
      return drain_timeout(c);
    case Deadline::Grace:
      return expire_kept(c);
    case Deadline::Handshake:
      return handshake_timeout(c);
  }
}

void Loop::end_of_turn() {
  if (!handshake_backlog_.empty()) serve_deferred_handshakes();
  if (tls_.tcp || tls_.ws) budget_.set_external(tls::allocated());  // OpenSSL's share
  budget_.refresh();  // what this turn's requests added to the table
  // The table's peak for maybe_trim() (buffers are seen by reaccount()).
  if ((turn_ & 63) == 0) trim_peak_ = std::max(trim_peak_, budget_.used());
  expire_deadlines();
  release_memory_holds();
  resume_pipelines();
  ring_.end_turn();
  // One send per connection per turn, carrying every answer of the batch.
  for (ConnId id : flush_queue_) {
    Connection& c = conns_.at(id);
    c.queued_for_flush = false;
    if (c.open() && c.take_output()) send_rest(c);
  }
  flush_queue_.clear();
  // Re-arm recvs that ended (ENOBUFS, or single-shot mode) now that the
  // buffers of this batch are back in the ring.
  for (ConnId id : rearm_queue_) {
    Connection& c = conns_.at(id);
    if (c.in_flight().recv != 0) continue;
    if ((c.open() && c.state() != State::Throttled) ||
        (c.state() == State::Draining && !c.peer_eof))
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

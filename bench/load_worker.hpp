// One load-generating thread: a level-triggered epoll loop over many
// non-blocking connections, each with a ring of send timestamps for the
// requests it has in flight (answers come back in request order).
//
// The Worker is a template on TLS, included by two translation units:
// load_worker.cpp instantiates Worker<false>, the plain path, whose code is
// what it was before TLS (each TLS step is an `if constexpr` on a member
// that only load_worker_tls.cpp defines, so the plain unit compiles no TLS
// code and inlines as before); load_worker_tls.cpp instantiates
// Worker<true>: handshake after connect, each batch of requests one
// SSL_write (one TLS record), replies read with SSL_read.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "load.hpp"
#include "tls.hpp"

namespace bench {

namespace {

constexpr std::size_t kScratch = 256 * 1024;
constexpr std::uint64_t kStallNs = 50'000'000;
constexpr int kMaxEvents = 512;

struct Conn {
  enum class State : std::uint8_t { Idle, Connecting, Handshaking, Open, Closed };
  int fd = -1;
  State state = State::Idle;
  bool answered = false;  // has had its first answer: leaves the opening window
  bool want_out = false;
  std::string in;
  std::string out;
  std::size_t out_off = 0;
  std::vector<std::uint64_t> sent_at;  // ring, capacity a power of two >= depth
  std::uint32_t head = 0, count = 0;
  std::uint64_t replies = 0;  // even: a take's answer, odd: a release's (answers are ordered)
  std::unique_ptr<RequestSource> src;
};

struct TlsConn : Conn {
  ssl_st* ssl = nullptr;
};

template <bool kTls>
class Worker {
  using Conn = std::conditional_t<kTls, TlsConn, bench::Conn>;

 public:
  Worker(const LoadOptions& o, unsigned first, unsigned count, std::uint64_t budget,
         const std::atomic<int>& phase, Progress& progress, WorkerResult& r)
      : o_(o), first_(first), budget_(budget), phase_(phase), progress_(progress), r_(r),
        conns_(count), scratch_(new char[kScratch]) {
    ring_ = 1;
    while (ring_ < o.depth) ring_ <<= 1;
    if (shares_keys(o.workload))
      shared_table_ = make_table(o.workload, o.proto, o.keys, o.wait_ms, 0);
  }
  ~Worker() {
    if (ep_ >= 0) ::close(ep_);
    if constexpr (kTls)
      for (Conn& c : conns_) tls_close(c);
  }
  void run();

 private:
  enum class Opened { Started, Failed, Retry };
  Opened open_one(unsigned i);
  void on_event(unsigned i, std::uint32_t ev);
  void read(Conn& c);
  void consume(Conn& c, std::string_view bytes);
  void issue(Conn& c);
  void flush(Conn& c);
  void lost(Conn& c);
  // TLS only (load_worker_tls.cpp).
  void tls_start(Conn& c, unsigned i);
  void tls_close(Conn& c);
  void handshake(Conn& c, unsigned i);
  void read_tls(Conn& c);
  void flush_tls(Conn& c);
  void set_events(Conn& c, std::uint32_t ev, unsigned i, int op = EPOLL_CTL_MOD);
  bool may_issue() const { return !stopping_ && (budget_ == 0 || issued_ < budget_); }

  const LoadOptions& o_;
  unsigned first_;
  std::uint64_t budget_;
  const std::atomic<int>& phase_;
  Progress& progress_;
  WorkerResult& r_;
  std::vector<Conn> conns_;
  std::unique_ptr<char[]> scratch_;
  std::shared_ptr<const RequestTable> shared_table_;
  std::uint32_t ring_ = 1;
  int ep_ = -1;
  unsigned next_open_ = 0, opening_ = 0, open_now_ = 0;
  std::uint64_t issued_ = 0, inflight_ = 0, completed_ = 0;
  std::uint64_t now_ = 0, last_reply_ = 0;
  bool measuring_ = false, stopping_ = false;
};

template <bool kTls>
void Worker<kTls>::set_events(Conn& c, std::uint32_t ev, unsigned i, int op) {
  epoll_event e{};
  e.events = ev;
  e.data.u32 = i;
  ::epoll_ctl(ep_, op, c.fd, &e);
}

template <bool kTls>
typename Worker<kTls>::Opened Worker<kTls>::open_one(unsigned i) {
  Conn& c = conns_[i];
  int err = 0;
  c.fd = start_connect(o_.target, err);
  if (c.fd < 0) {
    if (err == EAGAIN) return Opened::Retry;  // a full unix-socket backlog
    c.state = Conn::State::Closed;
    ++r_.connect_failures;
    return Opened::Failed;
  }
  c.state = Conn::State::Connecting;
  c.sent_at.assign(ring_, 0);
  c.src = std::make_unique<RequestSource>(
      shared_table_ ? shared_table_
                    : make_table(o_.workload, o_.proto, o_.keys, o_.wait_ms, first_ + i),
      (first_ + i) * 2654435761u + 1);
  ++opening_;
  set_events(c, EPOLLOUT, i, EPOLL_CTL_ADD);
  return Opened::Started;
}

template <bool kTls>
void Worker<kTls>::run() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(kMaxEvents);
  std::uint64_t drain_deadline = 0;
  for (;;) {
    now_ = now_ns();
    const int phase = phase_.load(std::memory_order_acquire);
    measuring_ = phase == kMeasure;
    if (!stopping_ && (phase == kStop || (budget_ > 0 && issued_ >= budget_))) {
      stopping_ = true;
      drain_deadline = now_ + static_cast<std::uint64_t>(o_.drain_s * 1e9);
      for (Conn& c : conns_)
        if (budget_ == 0 && c.state == Conn::State::Open && c.src->mid_pair()) issue(c);
    }
    // Open in waves so the listen backlog never overflows (a dropped SYN
    // costs a one-second retransmit and would show up as latency).
    while (!stopping_ && next_open_ < conns_.size() && opening_ < o_.open_window) {
      if (open_one(next_open_) == Opened::Retry) break;  // again next turn
      ++next_open_;
    }
    progress_.settled.store(r_.opened + r_.connect_failures, std::memory_order_relaxed);
    progress_.completed.store(completed_, std::memory_order_relaxed);
    if (stopping_ && (inflight_ == 0 || now_ >= drain_deadline)) break;
    if (!stopping_ && next_open_ == conns_.size() && open_now_ == 0 && opening_ == 0) break;
    const int n = ::epoll_wait(ep_, events.data(), kMaxEvents, 10);
    if (n < 0 && errno != EINTR) break;
    now_ = now_ns();
    for (int k = 0; k < n; ++k) on_event(events[k].data.u32, events[k].events);
    if (measuring_ && inflight_ > 0 && last_reply_ != 0 && now_ - last_reply_ > r_.max_gap_ns)
      r_.max_gap_ns = now_ - last_reply_;
  }
  r_.unanswered += inflight_;
  for (Conn& c : conns_)
    if (c.fd >= 0) close_abortive(c.fd);
  progress_.completed.store(completed_, std::memory_order_relaxed);
  progress_.settled.store(conns_.size(), std::memory_order_relaxed);
  progress_.finished.store(true, std::memory_order_release);
}

template <bool kTls>
void Worker<kTls>::on_event(unsigned i, std::uint32_t ev) {
  Conn& c = conns_[i];
  if (c.state == Conn::State::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (ev & EPOLLERR)) {
      ++r_.connect_failures;
      --opening_;
      ::close(c.fd);
      c.fd = -1;
      c.state = Conn::State::Closed;
      return;
    }
    ++open_now_;
    if constexpr (kTls) return tls_start(c, i);
    c.state = Conn::State::Open;
    set_events(c, EPOLLIN, i);
    issue(c);
    return;
  }
  if constexpr (kTls)
    if (c.state == Conn::State::Handshaking) return handshake(c, i);
  if (c.state != Conn::State::Open) return;
  if (ev & EPOLLOUT) flush(c);
  if (c.state == Conn::State::Open && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) read(c);
}

template <bool kTls>
void Worker<kTls>::read(Conn& c) {
  if constexpr (kTls) return read_tls(c);
  for (int i = 0; i < 8; ++i) {  // bounded: other connections get their turn
    const ssize_t n = ::recv(c.fd, scratch_.get(), kScratch, 0);
    if (n > 0) {
      consume(c, std::string_view(scratch_.get(), static_cast<std::size_t>(n)));
      if (c.state != Conn::State::Open) return;
      if (static_cast<std::size_t>(n) < kScratch) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return lost(c);  // EOF or reset: the server dropped us
  }
  issue(c);
}

template <bool kTls>
void Worker<kTls>::consume(Conn& c, std::string_view bytes) {
  std::string_view data = bytes;
  if (!c.in.empty()) {
    c.in.append(bytes);
    data = c.in;
  }
  bool replied = false;
  const std::size_t used = parse_replies(o_.proto, data, [&](Reply r) {
    if (c.count == 0) {
      ++r_.protocol_errors;  // an answer nobody asked for
      return;
    }
    const std::uint64_t sent = c.sent_at[c.head];
    c.head = (c.head + 1) & (ring_ - 1);
    --c.count;
    --inflight_;
    ++completed_;
    replied = true;
    if (!c.answered) {
      c.answered = true;
      --opening_;
      ++r_.opened;
    }
    if (r == Reply::Ok) ++r_.ok;
    else if (r == Reply::Fail) ++((c.replies & 1) ? r_.fail_release : r_.fail);
    else ++r_.errors;
    ++c.replies;
    if (measuring_) r_.latency.record(now_ - sent);
  });
  if (used == SIZE_MAX) {
    ++r_.protocol_errors;
    return lost(c);
  }
  if (replied) {
    if (measuring_ && last_reply_ != 0) {
      const std::uint64_t gap = now_ - last_reply_;
      if (gap > kStallNs) ++r_.stalls;
      if (gap > r_.max_gap_ns) r_.max_gap_ns = gap;
    }
    last_reply_ = now_;
  }
  if (data.data() == c.in.data()) c.in.erase(0, used);
  else c.in.assign(data.substr(used));
}

template <bool kTls>
void Worker<kTls>::issue(Conn& c) {
  const std::uint32_t limit = c.answered ? o_.depth : 1;
  // At the end of a timed run a take still gets its release: a lock left
  // held by the load generator would make other connections' `w` wait out
  // their time-out. A counted run (--requests) sends exactly its count.
  while (c.count < limit &&
         (may_issue() || (stopping_ && budget_ == 0 && c.src->mid_pair()))) {
    c.out.append(c.src->next());
    c.sent_at[(c.head + c.count) & (ring_ - 1)] = now_;
    ++c.count;
    ++inflight_;
    ++issued_;
  }
  if (c.out.size() > c.out_off) flush(c);
}

template <bool kTls>
void Worker<kTls>::flush(Conn& c) {
  if constexpr (kTls) return flush_tls(c);
  const auto i = static_cast<unsigned>(&c - conns_.data());
  while (c.out_off < c.out.size()) {
    const ssize_t n =
        ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!c.want_out) {
        c.want_out = true;
        set_events(c, EPOLLIN | EPOLLOUT, i);
      }
      return;
    }
    return lost(c);
  }
  c.out.clear();
  c.out_off = 0;
  if (c.want_out) {
    c.want_out = false;
    set_events(c, EPOLLIN, i);
  }
}

template <bool kTls>
void Worker<kTls>::lost(Conn& c) {
  ++r_.disconnects;
  r_.unanswered += c.count;
  inflight_ -= c.count;
  c.count = 0;
  if (!c.answered) {
    --opening_;
    ++r_.connect_failures;
  }
  --open_now_;
  if constexpr (kTls) tls_close(c);
  ::close(c.fd);
  c.fd = -1;
  c.state = Conn::State::Closed;
}

}  // namespace

// Worker<true>'s run (load_worker_tls.cpp).
void run_worker_tls(const LoadOptions& o, unsigned first, unsigned count, std::uint64_t budget,
                    const std::atomic<int>& phase, Progress& progress, WorkerResult& result);

}  // namespace bench

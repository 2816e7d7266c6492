// Handshake mode: a pool of client slots, each in a loop of connect, full
// TLS handshake (with the client certificate), one request, its answer,
// and an abortive close (RST, so neither side keeps TIME_WAIT and the
// ephemeral ports last). Gives full handshakes per second, the server's CPU
// per handshake over the window, and the client's connect-to-answer time.
// Without TLS it does the same over plain TCP: the baseline of a
// connection's cost with no handshake.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "modes.hpp"
#include "stats.hpp"
#include "tls.hpp"

namespace bench {

namespace {

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

const char kRequest[] = "i bench:handshake\n";

struct Slot {
  enum class State : std::uint8_t { Idle, Connecting, Handshaking, Asked };
  int fd = -1;
  State state = State::Idle;
  SSL* ssl = nullptr;
  SSL_SESSION* session = nullptr;  // --tls-resume: the last connection's
  std::uint64_t t0 = 0;
  std::string in;
};

struct alignas(64) HsProgress {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<bool> finished{false};
};

struct HsResult {
  Histogram latency;  // connect() to the answer, measured window only
  std::uint64_t completed = 0, failures = 0, resumed = 0, connect_failures = 0;
  std::string first_error;
};

class HsWorker {
 public:
  HsWorker(const HandshakeOptions& o, unsigned slots, std::uint64_t budget,
           const std::atomic<int>& phase, HsProgress& p, HsResult& r)
      : o_(o), slots_(slots), budget_(budget), phase_(phase), p_(p), r_(r) {}
  void run();

 private:
  void start(unsigned i);
  void step(unsigned i);
  void finish(unsigned i, bool ok, const char* why);
  void want(Slot& s, unsigned i, std::uint32_t ev, int op = EPOLL_CTL_MOD) {
    epoll_event e{};
    e.events = ev;
    e.data.u32 = i;
    ::epoll_ctl(ep_, op, s.fd, &e);
  }
  bool may_start() const { return !stopping_ && (budget_ == 0 || started_ < budget_); }

  const HandshakeOptions& o_;
  std::vector<Slot> slots_;
  std::uint64_t budget_;
  const std::atomic<int>& phase_;
  HsProgress& p_;
  HsResult& r_;
  int ep_ = -1;
  std::uint64_t started_ = 0, active_ = 0;
  bool measuring_ = false, stopping_ = false;
};

void HsWorker::start(unsigned i) {
  Slot& s = slots_[i];
  int err = 0;
  s.fd = start_connect(o_.target, err);
  if (s.fd < 0) {
    ++r_.connect_failures;
    return;
  }
  ++started_;
  ++active_;
  s.t0 = now_ns();
  s.state = Slot::State::Connecting;
  s.in.clear();
  want(s, i, EPOLLOUT, EPOLL_CTL_ADD);
}

void HsWorker::finish(unsigned i, bool ok, const char* why) {
  Slot& s = slots_[i];
  if (ok) {
    ++r_.completed;
    if (measuring_) r_.latency.record(now_ns() - s.t0);
    if (s.ssl != nullptr) {
      if (SSL_session_reused(s.ssl) && measuring_) ++r_.resumed;
      if (o_.tls_resume) {
        SSL_SESSION_free(s.session);
        s.session = SSL_get1_session(s.ssl);
        // Without our close_notify OpenSSL marks the session not resumable
        // when the SSL is freed (a connection cut short may have been an
        // attack on it).
        SSL_shutdown(s.ssl);
      }
    }
  } else {
    if (r_.failures++ == 0) r_.first_error = why;
  }
  SSL_free(s.ssl);
  s.ssl = nullptr;
  close_abortive(s.fd);  // also takes it out of the epoll set
  s.fd = -1;
  s.state = Slot::State::Idle;
  --active_;
  p_.completed.store(r_.completed, std::memory_order_relaxed);
}

void HsWorker::step(unsigned i) {
  Slot& s = slots_[i];
  if (s.state == Slot::State::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return finish(i, false, "connect failed");
    if (o_.tls == nullptr) {
      if (::send(s.fd, kRequest, sizeof kRequest - 1, MSG_NOSIGNAL) !=
          static_cast<ssize_t>(sizeof kRequest - 1))
        return finish(i, false, "send failed");
      s.state = Slot::State::Asked;
      return want(s, i, EPOLLIN);
    }
    s.ssl = SSL_new(o_.tls);
    SSL_set_fd(s.ssl, s.fd);
    if (s.session != nullptr) SSL_set_session(s.ssl, s.session);
    s.state = Slot::State::Handshaking;
  }
  if (s.state == Slot::State::Handshaking) {
    ERR_clear_error();
    const int r = SSL_connect(s.ssl);
    if (r != 1) {
      const int e = SSL_get_error(s.ssl, r);
      if (e == SSL_ERROR_WANT_READ) return want(s, i, EPOLLIN);
      if (e == SSL_ERROR_WANT_WRITE) return want(s, i, EPOLLOUT);
      const std::string why = "TLS handshake failed: " + tls_error("connection closed");
      return finish(i, false, why.c_str());
    }
    // The request is the proof the server accepted us: with TLS 1.3 it
    // checks the client certificate only after our Finished.
    if (SSL_write(s.ssl, kRequest, sizeof kRequest - 1) != static_cast<int>(sizeof kRequest - 1))
      return finish(i, false, "SSL_write failed");
    s.state = Slot::State::Asked;
    return want(s, i, EPOLLIN);
  }
  // Asked: read until the answer line.
  char buf[4096];
  for (;;) {
    int n;
    if (s.ssl != nullptr) {
      ERR_clear_error();
      n = SSL_read(s.ssl, buf, sizeof buf);
      if (n <= 0) {
        const int e = SSL_get_error(s.ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        const std::string why = "TLS read failed: " + tls_error("connection closed");
        return finish(i, false, why.c_str());
      }
    } else {
      n = static_cast<int>(::recv(s.fd, buf, sizeof buf, 0));
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) return finish(i, false, "connection closed before the answer");
    }
    s.in.append(buf, static_cast<std::size_t>(n));
    if (s.in.find('\n') != std::string::npos) return finish(i, true, nullptr);
  }
}

void HsWorker::run() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(512);
  const std::uint64_t t_start = now_ns();
  for (;;) {
    const int phase = phase_.load(std::memory_order_acquire);
    measuring_ = phase == kMeasure;
    if (phase == kStop) stopping_ = true;
    for (unsigned i = 0; i < slots_.size(); ++i)
      if (slots_[i].state == Slot::State::Idle && may_start()) start(i);
    if (active_ == 0 && (stopping_ || !may_start())) break;
    // Nothing gets through at all (no server, every handshake refused):
    // give up instead of spinning on failures.
    if (r_.completed == 0 && r_.failures + r_.connect_failures > 1000 &&
        now_ns() - t_start > 2'000'000'000ull)
      break;
    if (stopping_) break;  // handshakes still under way are not counted
    const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 10);
    if (n < 0 && errno != EINTR) break;
    for (int k = 0; k < n; ++k) step(events[k].data.u32);
  }
  for (Slot& s : slots_) {
    SSL_free(s.ssl);
    SSL_SESSION_free(s.session);
    if (s.fd >= 0) close_abortive(s.fd);
  }
  ::close(ep_);
  p_.completed.store(r_.completed, std::memory_order_relaxed);
  p_.finished.store(true, std::memory_order_release);
}

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

struct Snap {
  std::uint64_t t = 0, completed = 0;
  double server = -1, client = 0, busy = 0;
};

}  // namespace

int run_handshakes(const HandshakeOptions& o) {
  const unsigned threads = std::max(1u, std::min(o.threads, o.connections));
  std::atomic<int> phase{o.count > 0 ? kMeasure : kWarmup};
  std::vector<std::unique_ptr<HsProgress>> progress;
  std::vector<HsResult> results(threads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) progress.push_back(std::make_unique<HsProgress>());
  auto snap = [&] {
    Snap s;
    s.t = now_ns();
    for (const auto& p : progress) s.completed += p->completed.load(std::memory_order_relaxed);
    if (o.server_pid > 0) s.server = process_cpu_seconds(o.server_pid).value_or(-1);
    s.client = self_cpu_seconds();
    s.busy = machine_cpu().busy_s;
    return s;
  };
  auto all_finished = [&] {
    for (const auto& p : progress)
      if (!p->finished.load(std::memory_order_acquire)) return false;
    return true;
  };
  Snap start = snap();
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned slots = o.connections / threads + (t < o.connections % threads ? 1 : 0);
    const std::uint64_t budget = o.count == 0 ? 0 : o.count / threads + (t < o.count % threads ? 1 : 0);
    workers.emplace_back([&, t, slots, budget] {
      HsWorker w(o, slots, budget, phase, *progress[t], results[t]);
      w.run();
    });
  }
  Snap end;
  if (o.count > 0) {
    while (!all_finished()) sleep_s(0.001);
    end = snap();
  } else {
    const std::uint64_t warm_until = now_ns() + static_cast<std::uint64_t>(o.warmup_s * 1e9);
    while (now_ns() < warm_until && !all_finished()) sleep_s(0.002);
    start = snap();
    phase.store(kMeasure, std::memory_order_release);
    const std::uint64_t until = start.t + static_cast<std::uint64_t>(o.duration_s * 1e9);
    while (now_ns() < until && !all_finished()) sleep_s(0.002);
    end = snap();
    phase.store(kStop, std::memory_order_release);
  }
  for (auto& w : workers) w.join();

  HsResult all;
  for (HsResult& r : results) {
    all.latency.merge(r.latency);
    all.completed += r.completed;
    all.failures += r.failures;
    all.resumed += r.resumed;
    all.connect_failures += r.connect_failures;
    if (all.first_error.empty()) all.first_error = r.first_error;
  }
  const double window = static_cast<double>(end.t - start.t) / 1e9;
  const std::uint64_t done = end.completed - start.completed;
  const double per_s = window > 0 ? static_cast<double>(done) / window : 0;
  const double server_cpu = (start.server >= 0 && end.server >= 0) ? end.server - start.server : -1;
  const double server_us = server_cpu >= 0 && done > 0 ? server_cpu * 1e6 / static_cast<double>(done) : -1;
  const double client_cpu = end.client - start.client;
  const double client_us = done > 0 ? client_cpu * 1e6 / static_cast<double>(done) : -1;
  const double other = end.busy - start.busy - client_cpu - (server_cpu >= 0 ? server_cpu : 0);
  const double other_pct = window > 0 ? 100.0 * std::max(0.0, other) / window : 0;
  const Histogram& h = all.latency;
  std::printf("target %s  %s  slots %u  threads %u%s\n", o.target.describe.c_str(),
              o.tls ? "TLS: full handshake + one request + RST" : "plain: connect + one request + RST",
              o.connections, threads, o.tls_resume ? "  (sessions resumed when the server lets us)" : "");
  std::printf("window %.3f s: %llu connections, %.0f per second (%llu resumed)\n", window,
              static_cast<unsigned long long>(done), per_s,
              static_cast<unsigned long long>(all.resumed));
  std::printf("connect to answer, us: p50 %s  p99 %s  p999 %s  max %s\n", us(h.quantile(0.5)).c_str(),
              us(h.quantile(0.99)).c_str(), us(h.quantile(0.999)).c_str(), us(h.max()).c_str());
  if (server_cpu >= 0)
    std::printf("server cpu %.3f s: %.1f us per connection (%.0f%% of one core)\n", server_cpu,
                server_us, window > 0 ? 100.0 * server_cpu / window : 0);
  std::printf("client cpu %.3f s: %.1f us per connection; other load %.0f%% of one core\n",
              client_cpu, client_us, other_pct);
  if (all.failures + all.connect_failures > 0)
    std::printf("failures %llu (first: %s), connect failures %llu\n",
                static_cast<unsigned long long>(all.failures), all.first_error.c_str(),
                static_cast<unsigned long long>(all.connect_failures));
  std::printf("RESULT mode=handshake tls=%d resume=%d slots=%u threads=%u window_s=%.3f "
              "handshakes=%llu hs_per_s=%.0f p50_us=%s p99_us=%s p999_us=%s max_us=%s "
              "server_cpu_s=%.3f server_us_per_hs=%.1f client_us_per_hs=%.1f resumed=%llu "
              "failures=%llu connect_failures=%llu other_cpu_pct=%.0f\n",
              o.tls ? 1 : 0, o.tls_resume ? 1 : 0, o.connections, threads, window,
              static_cast<unsigned long long>(done), per_s, us(h.quantile(0.5)).c_str(),
              us(h.quantile(0.99)).c_str(), us(h.quantile(0.999)).c_str(), us(h.max()).c_str(),
              server_cpu, server_us, client_us, static_cast<unsigned long long>(all.resumed),
              static_cast<unsigned long long>(all.failures),
              static_cast<unsigned long long>(all.connect_failures), other_pct);
  std::fflush(stdout);
  return done == 0 ? 1 : 0;
}

}  // namespace bench

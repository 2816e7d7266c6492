// Idle mode: N connections each take a lock of their own and then sit
// idle; the server's VmRSS before and after tells the memory one idle
// lock-holding connection costs.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "modes.hpp"
#include "stats.hpp"

namespace bench {

namespace {

struct IdleConn {
  enum class State : std::uint8_t { Idle, Connecting, Asked, Holding, Failed };
  int fd = -1;
  State state = State::Idle;
  std::string in;
};

std::string lock_request(Proto p, unsigned i) {
  const std::string key = "bench:idle" + std::to_string(i);
  return p == Proto::Resp ? resp_command({"SET", key, "1", "NX"}) : line_request("g", key);
}

}  // namespace

int run_idle(const IdleOptions& o) {
  long before = -1;
  if (o.server_pid > 0) before = process_rss_kib(o.server_pid).value_or(-1);
  std::vector<IdleConn> conns(o.connections);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  unsigned next = 0, opening = 0, holding = 0, failed = 0, refused = 0;
  const std::uint64_t t0 = now_ns();
  const std::uint64_t deadline = t0 + static_cast<std::uint64_t>(o.timeout_s * 1e9);
  std::vector<epoll_event> events(512);
  char buf[4096];
  auto fail = [&](IdleConn& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.state = IdleConn::State::Failed;
    --opening;
    ++failed;
  };
  while (holding + failed < o.connections && now_ns() < deadline) {
    while (next < o.connections && opening < o.open_window) {
      int err = 0;
      IdleConn& c = conns[next];
      c.fd = start_connect(o.target, err);
      if (c.fd < 0 && err == EAGAIN) break;  // unix backlog full: next turn
      ++next;
      if (c.fd < 0) {
        c.state = IdleConn::State::Failed;
        ++failed;
        continue;
      }
      c.state = IdleConn::State::Connecting;
      ++opening;
      epoll_event e{};
      e.events = EPOLLOUT;
      e.data.u32 = next - 1;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &e);
    }
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10);
    for (int k = 0; k < n; ++k) {
      const unsigned i = events[k].data.u32;
      IdleConn& c = conns[i];
      if (c.state == IdleConn::State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        const std::string req = lock_request(o.proto, i);
        if (err != 0 || ::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) !=
                             static_cast<ssize_t>(req.size())) {
          fail(c);
          continue;
        }
        c.state = IdleConn::State::Asked;
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.u32 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &e);
      } else if (c.state == IdleConn::State::Asked) {
        const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) {  // the server closed it: over its connection limit?
          ++refused;
          fail(c);
          continue;
        }
        c.in.append(buf, static_cast<std::size_t>(r));
        unsigned replies = 0, granted = 0;
        if (parse_replies(o.proto, c.in, [&](Reply x) {
              ++replies;
              granted += x == Reply::Ok;
            }) == SIZE_MAX) {
          fail(c);
          continue;
        }
        if (replies == 0) continue;
        if (granted == 0) {
          fail(c);
          continue;
        }
        c.state = IdleConn::State::Holding;
        c.in = std::string();
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --opening;
        ++holding;
      }
    }
  }
  const double open_s = static_cast<double>(now_ns() - t0) / 1e9;
  std::this_thread::sleep_for(std::chrono::duration<double>(o.settle_s));
  long after = -1;
  if (o.server_pid > 0) after = process_rss_kib(o.server_pid).value_or(-1);
  if (o.hold_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o.hold_s));
  // Connections the server dropped while they sat idle.
  unsigned dropped = 0;
  for (IdleConn& c : conns) {
    if (c.state != IdleConn::State::Holding) continue;
    pollfd p{c.fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLERR))) ++dropped;
  }
  for (IdleConn& c : conns)
    if (c.fd >= 0) close_abortive(c.fd);
  ::close(ep);

  const double per_conn =
      (before >= 0 && after >= 0 && holding > 0)
          ? static_cast<double>(after - before) * 1024.0 / static_cast<double>(holding)
          : -1;
  std::printf("target %s: %u of %u connections hold a lock (opened in %.2f s); %u failed "
              "(%u closed by the server), %u dropped while idle\n",
              o.target.describe.c_str(), holding, o.connections, open_s, failed, refused, dropped);
  if (per_conn >= 0)
    std::printf("server VmRSS %ld KiB -> %ld KiB: %.0f bytes per idle connection\n", before,
                after, per_conn);
  std::printf("RESULT mode=idle conns=%u holding=%u failed=%u refused=%u dropped=%u open_s=%.3f "
              "rss_before_kib=%ld rss_after_kib=%ld bytes_per_conn=%.0f\n",
              o.connections, holding, failed, refused, dropped, open_s, before, after, per_conn);
  std::fflush(stdout);
  return holding > 0 ? 0 : 1;
}

}  // namespace bench

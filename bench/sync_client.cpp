// A small blocking-style client (poll with deadlines) for the modes that
// need one connection at a time, and the ping mode built on it.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "modes.hpp"
#include "stats.hpp"

namespace bench {

namespace {

int remaining_ms(std::uint64_t deadline) {
  const std::uint64_t now = now_ns();
  return now >= deadline ? 0 : static_cast<int>((deadline - now) / 1000000 + 1);
}

}  // namespace

int connect_retry(const Target& t, double timeout_s, std::string& error) {
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
  for (;;) {
    int err = 0;
    const int fd = start_connect(t, err);
    if (fd >= 0) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 1) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) return fd;
      } else {
        err = ETIMEDOUT;
      }
      ::close(fd);
    }
    if (now_ns() >= deadline) {
      error = "cannot connect to " + t.describe + ": " + std::strerror(err);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool exchange(int fd, std::string_view out, std::string& in,
              const std::function<bool(const std::string&)>& done, double timeout_s) {
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
  std::size_t off = 0;
  char buf[64 * 1024];
  while (!done(in)) {
    pollfd p{fd, static_cast<short>(POLLIN | (off < out.size() ? POLLOUT : 0)), 0};
    const int ms = remaining_ms(deadline);
    if (ms == 0) return false;
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if ((p.revents & POLLOUT) && off < out.size()) {
      const ssize_t w = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (w > 0) off += static_cast<std::size_t>(w);
      else if (errno != EAGAIN && errno != EINTR) return false;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) in.append(buf, static_cast<std::size_t>(r));
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) return done(in);
    }
  }
  // Whatever was not sent yet goes out too: the caller asked for all of it.
  while (off < out.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) != 1) return false;
    const ssize_t w = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (w > 0) off += static_cast<std::size_t>(w);
    else if (errno != EAGAIN && errno != EINTR) return false;
  }
  return true;
}

int run_ping(const PingOptions& o) {
  std::string error;
  const int fd = connect_retry(o.target, o.timeout_s, error);
  if (fd < 0) {
    std::fprintf(stderr, "glockd-loadgen: %s\n", error.c_str());
    return 1;
  }
  const std::string probe = o.proto == Proto::Resp ? resp_command({"PING"})
                                                   : line_request("i", "bench:ping");
  std::string in;
  const bool ok = exchange(
      fd, probe, in,
      [&](const std::string& s) {
        std::size_t n = 0;
        return parse_replies(o.proto, s, [&](Reply) { ++n; }) == SIZE_MAX || n > 0;
      },
      o.timeout_s);
  ::close(fd);
  if (!ok || in.empty()) {
    std::fprintf(stderr, "glockd-loadgen: %s accepted but did not answer\n",
                 o.target.describe.c_str());
    return 1;
  }
  std::printf("RESULT mode=ping ok=1\n");
  return 0;
}

}  // namespace bench

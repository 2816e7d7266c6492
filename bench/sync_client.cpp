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
#include "tls.hpp"

namespace bench {

namespace {

// The ping over TLS: handshake, the probe, one answer line (or any RESP
// reply), within the timeout.
int tls_ping(const PingOptions& o, int fd, const std::string& probe) {
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
  std::string error;
  SSL* ssl = tls_connect_blocking(o.tls, fd, deadline, error);
  bool ok = false;
  if (ssl != nullptr && SSL_write(ssl, probe.data(), static_cast<int>(probe.size())) > 0) {
    std::string in;
    char buf[4096];
    while (!ok && now_ns() < deadline) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        in.append(buf, static_cast<std::size_t>(n));
        std::size_t replies = 0;
        ok = parse_replies(o.proto, in, [&](Reply) { ++replies; }) != SIZE_MAX && replies > 0;
        continue;
      }
      const int e = SSL_get_error(ssl, n);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        error = "no answer: " + tls_error("the server closed the connection");
        break;
      }
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 10);
    }
    if (!ok && error.empty()) error = "no answer in time";
  }
  SSL_free(ssl);
  ::close(fd);
  if (!ok) {
    std::fprintf(stderr, "glockd-loadgen: %s (TLS): %s\n", o.target.describe.c_str(),
                 error.c_str());
    return 1;
  }
  std::printf("RESULT mode=ping ok=1 tls=1\n");
  return 0;
}

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
  if (o.tls != nullptr) return tls_ping(o, fd, probe);
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

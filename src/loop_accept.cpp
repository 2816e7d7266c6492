// Accepting connections: the multishot accept's completions (re-armed, or
// retried after a pause when out of descriptors), the --max-connections
// bound, and each new connection's name (ADDR).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;

namespace {

std::string format_peer(const sockaddr_storage& ss) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      ::inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], ip, sizeof ip);
      return std::string(ip) + ":" + std::to_string(ntohs(a.sin6_port));
    }
    ::inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  return "?";
}

}  // namespace

void Loop::on_accept(std::size_t i, const io_uring_cqe& cqe) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) accept_armed_[i] = false;
  if (cqe.res >= 0) {
    if (stopping_) {
      ::close(cqe.res);
    } else {
      adopt(cqe.res, listeners_[i].transport);
    }
  } else if (cqe.res != -ECANCELED) {
    warn_limited(accept_error_limit_, std::string("accept on ") + listeners_[i].where + ": " +
                                          std::strerror(-cqe.res));
  }
  if (!accept_armed_[i] && !stopping_) {
    // Out of descriptors: retry after a pause instead of spinning.
    if (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOBUFS || cqe.res == -ENOMEM)
      arm_retry_timer();
    else
      arm_accept(i);
  }
}

void Loop::adopt(int fd, Transport transport) {
  if (open_ >= max_connections_) {
    ::close(fd);
    warn_limited(full_limit_, "refusing connections: --max-connections (" +
                                  std::to_string(max_connections_) + ") reached");
    return;
  }
  Connection& c = conns_.allocate();
  c.fd = fd;
  c.transport = transport;
  if (transport == Transport::Unix) {
    c.addr = "unix:" + std::to_string(++unix_counter_);
  } else {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    c.addr = ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? format_peer(ss)
                                                                             : "?";
  }
  ++open_;
  ++accepted_;
  ++open_by_transport_[static_cast<int>(transport)];
  if (transport == Transport::Ws) {
    // An HTTP request head first; it must be complete within the timeout.
    c.ws = std::make_unique<WebSocketState>(config_.http_max_header, config_.ws_max_message);
    c.deadline_ns = now_ns() + std::int64_t{config_.ws_handshake_timeout_seconds} * 1'000'000'000;
    timers_.emplace(c.deadline_ns, c.session.id);
  }
  if (config_.verbose) spdlog::debug("{} connected", c.addr);
  arm_recv(c);
}

}  // namespace glockd

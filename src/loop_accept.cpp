// Accepting connections: the multishot accept's completions (re-armed, or
// retried after a pause when out of descriptors), the --max-connections
// bound, and each new connection's name (ADDR).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
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

void Loop::arm_accept(std::size_t i) {
  ring_.accept(listeners_[i].fd.get(), Tag{Op::Accept, static_cast<std::uint32_t>(i)});
  accept_armed_[i] = true;
}

void Loop::arm_retry_timer() {
  if (accept_retry_pending_) return;
  ring_.timeout(&retry_delay_, Tag{Op::Timer});
  accept_retry_pending_ = true;
}

void Loop::on_retry_timer() {
  accept_retry_pending_ = false;
  if (stopping_) return;
  for (std::size_t i = 0; i < listeners_.size(); ++i)
    if (!accept_armed_[i]) arm_accept(i);
}

bool Loop::accepts_armed() const {
  return std::find(accept_armed_.begin(), accept_armed_.end(), true) != accept_armed_.end();
}

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

void Loop::take_pending_accepts() {
  // What the kernel has queued on each listener, so a client that has
  // connected (but whose accept we have not seen yet) is counted by `q`.
  for (const Listener& l : listeners_) {
    for (;;) {
      const int fd = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      adopt(fd, l.transport);
    }
  }
}

void Loop::adopt(int fd, Transport transport) {
  if (open_ >= max_connections_) {
    ::close(fd);
    warn_limited(full_limit_, "refusing connections: --max-connections (" +
                                  std::to_string(max_connections_) + ") reached");
    return;
  }
  std::string addr;
  if (transport == Transport::Unix) {
    addr = "unix:" + std::to_string(++unix_counter_);
  } else {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    addr = ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 ? format_peer(ss) : "?";
  }
  // A plain socket shares one stream; a TLS port gives each its own.
  ByteStream* stream = tls_stream(addr, transport);
  if (stream == nullptr) {
    ::close(fd);
    return;
  }
  Connection& c = conns_.allocate();
  LayerPtr<Framing> framing(&LineFraming::instance());
  if (transport == Transport::Ws)
    framing.reset(new WebSocketFraming(WebSocketFraming::Limits{
        config_.http_max_header, config_.ws_max_message, config_.ws_handshake_timeout_seconds,
        config_.ws_message_timeout_seconds, &config_.ws_origins}));
  c.start(fd, transport, std::move(framing), LayerPtr<ByteStream>(stream));
  c.session.addr = std::move(addr);
  protocol_->attach(c.session);
  if (!stream->shared()) {
    ++open_tls_;
    arm_deadline(c, Deadline::Handshake,
                 after_ms(std::int64_t{config_.ssl_handshake_timeout_seconds} * 1000));
  }
  ++open_;
  ++accepted_;
  ++open_by_transport_[static_cast<int>(transport)];
  // An HTTP request head first; it must be complete within the timeout.
  if (!c.framing().transparent()) framing_deadline_update(c);
  if (config_.verbose) spdlog::debug("{} connected", c.session.addr);
  arm_recv(c);
}

}  // namespace glockd

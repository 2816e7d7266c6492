// The client's connecting: a unix socket or TCP (each address of a name
// tried in turn) within the connect deadline, and for tls:// the TLS
// handshake within the same deadline. Reading and writing are in
// client_link.cpp.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client/client.hpp"
#include "client/io.hpp"
#include "client/tls.hpp"

namespace glockd::client {

namespace {

using std::chrono::milliseconds;

std::string errno_text(int e) { return std::strerror(e); }

void set_keepalive(int fd, int seconds) {
  if (seconds <= 0) return;
  const int on = 1;
  const int interval = std::max(1, seconds / 2);
  const int count = 4;
  const unsigned user_timeout_ms = static_cast<unsigned>(seconds + count * interval) * 1000u;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

// connect() on a blocking socket bounded by SO_SNDTIMEO (works for unix
// and TCP sockets alike). Returns 0 or an errno.
int connect_within(int fd, const sockaddr* sa, socklen_t len, milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd, sa, len);
  } while (rc != 0 && errno == EINTR);
  const int err = rc == 0 ? 0 : (errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno);
  timeval zero{};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
  return err;
}

std::string sockaddr_text(const sockaddr* sa) {
  char host[NI_MAXHOST] = "?";
  char port[NI_MAXSERV] = "?";
  const socklen_t len = sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  ::getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
  return sa->sa_family == AF_INET6 ? "[" + std::string(host) + "]:" + port
                                   : std::string(host) + ":" + port;
}

Result<UniqueFd> connect_unix(const Address& address, const Options& options) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error{Errc::Connect, "cannot make a socket: " + errno_text(errno)};
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (address.path.size() >= sizeof sa.sun_path) {
    return Error{Errc::Address, "unix socket path too long: " + address.path};
  }
  std::memcpy(sa.sun_path, address.path.data(), address.path.size());
  const int err = connect_within(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa,
                                 options.connect_timeout);
  if (err != 0) {
    return Error{Errc::Connect, "cannot connect to glockd at " + address.text() + ": " + errno_text(err)};
  }
  return fd;
}

Result<UniqueFd> connect_tcp(const Address& address, const Options& options,
                             Clock::time_point deadline) {
  const std::string where = "glockd at " + address.text();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const int gai = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  if (gai != 0) {
    return Error{Errc::Connect, "cannot connect to " + where + ": cannot resolve '" +
                                    address.host + "': " + ::gai_strerror(gai)};
  }
  std::string tried;
  int last_err = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const auto left = milliseconds(remaining_ms(deadline));
    if (left.count() == 0) break;
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_err = errno;
      continue;
    }
    const std::string text = sockaddr_text(ai->ai_addr);
    tried += (tried.empty() ? "" : ", ") + text;
    last_err = connect_within(fd.get(), ai->ai_addr, ai->ai_addrlen, left);
    if (last_err == 0) {
      ::freeaddrinfo(found);
      const int on = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      set_keepalive(fd.get(), options.keepalive_seconds);
      return fd;
    }
  }
  ::freeaddrinfo(found);
  std::string msg = "cannot connect to " + where;
  const std::string bare = address.text().substr(address.tls ? 6 : 0);  // as tried shows it
  if (!tried.empty() && tried != bare) msg += " (tried " + tried + ")";
  return Error{Errc::Connect, msg + ": " + errno_text(last_err ? last_err : ETIMEDOUT)};
}

}  // namespace

void TlsSessionDelete::operator()(TlsSession* s) const { delete s; }

Result<Client> Client::connect(const Address& address, const Options& options) {
  const auto deadline = Clock::now() + options.connect_timeout;
  auto fd = address.kind == Address::Kind::Unix ? connect_unix(address, options)
                                                 : connect_tcp(address, options, deadline);
  if (!fd) return fd.error();
  Client c(std::move(*fd), address, options);
  if (address.tls) {
    if (auto r = c.start_tls(deadline); !r) return r.error();
  }
  return c;
}

// The handshake, bounded by what is left of the connect deadline.
Result<Done> Client::start_tls(Clock::time_point deadline) {
  const std::string where = "glockd at " + address_.text();
  std::shared_ptr<const TlsContext> context = options_.tls;
  if (!context) {  // the system's CAs, no client certificate
    auto loaded = load_tls(TlsFiles{});
    if (!loaded) return loaded.error();
    context = *loaded;
  }
  auto session = TlsSession::start(fd_.get(), *context, address_);
  if (!session) return session.error();
  tls_.reset(session->release());
  for (;;) {
    const Step s = tls_->handshake();
    switch (s.kind) {
      case Step::Moved: return Done{};
      case Step::End:
        return broken(Errc::Connect, where + " closed the connection during the TLS handshake "
                                             "(is that port serving TLS? does it take our "
                                             "client certificate? its log says why)");
      case Step::Failed:
        return broken(Errc::Connect, "TLS handshake with " + where + " failed: " + s.why);
      case Step::WantRead:
      case Step::WantWrite: break;
    }
    const int r = wait_for(fd_.get(), events_for(s), deadline);
    if (r < 0) return broken(Errc::Io, "poll: " + errno_text(errno));
    if (r == 0) {
      return broken(Errc::Timeout,
                    where + " did not complete the TLS handshake within the connect timeout (" +
                        std::to_string(options_.connect_timeout.count()) +
                        " ms); is that port serving TLS?");
    }
  }
}

}  // namespace glockd::client

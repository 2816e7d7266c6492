// The client's link to the daemon: connecting with a deadline, one request
// line out and its answer lines in (each with a deadline), and watching the
// link while a lock is held. The typed calls are in client.cpp.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "client/client.hpp"
#include "client/text.hpp"

namespace glockd::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string errno_text(int e) { return std::strerror(e); }

// Rounded up, so that a poll() for this long does not end before the
// deadline; capped for poll()'s int (the caller polls again).
int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out. A
// deadline beyond the cap (a `w` of kMaxWaitMs is 24 days) takes several polls.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0 || (n == 0 && Clock::now() >= deadline)) return n;
    if (n < 0 && errno != EINTR) return -1;
  }
}

std::string sentinel_name() {
  unsigned char bytes[12];
  if (::getrandom(bytes, sizeof bytes, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof bytes)) {
    const auto t = Clock::now().time_since_epoch().count() ^ (static_cast<long long>(::getpid()) << 40);
    std::memcpy(bytes, &t, 8);
    std::memset(bytes + 8, 0x5a, 4);
  }
  static const char hex[] = "0123456789abcdef";
  std::string s = "glock-end-";
  for (unsigned char c : bytes) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

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

bool is_part2(std::string_view request) {
  const auto cmd = request.substr(0, request.find(' '));
  return cmd == "w" || cmd == "sw" || cmd == "t" || cmd == "ra" || cmd == "grace" ||
         cmd == "session" || cmd == "resume";
}

}  // namespace

Result<Client> Client::connect(const Address& address, const Options& options) {
  const std::string where = "glockd at " + address.text();
  if (address.kind == Address::Kind::Unix) {
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
    if (err != 0) return Error{Errc::Connect, "cannot connect to " + where + ": " + errno_text(err)};
    return Client(std::move(fd), address, options);
  }

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
  const auto deadline = Clock::now() + options.connect_timeout;
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
      return Client(std::move(fd), address, options);
    }
  }
  ::freeaddrinfo(found);
  std::string msg = "cannot connect to " + where;
  if (!tried.empty() && tried != address.text()) msg += " (tried " + tried + ")";
  return Error{Errc::Connect, msg + ": " + errno_text(last_err ? last_err : ETIMEDOUT)};
}

Error Client::broken(Errc code, std::string message) {
  fd_.reset();
  in_.clear();
  return Error{code, std::move(message)};
}

Error Client::unexpected(std::string_view request, std::string_view answer) const {
  return Error{Errc::Protocol, "unexpected answer from glockd at " + address_.text() + " to '" +
                                   printable(request, 100) + "': '" + printable(answer, 200) + "'"};
}

Error Client::refused(std::string_view request, std::string_view line) const {
  return Error{Errc::BadRequest, "glockd at " + address_.text() + " refused '" +
                                     printable(request, 100) + "': " +
                                     printable(line.substr(15), 200)};
}

Result<Done> Client::check_name(std::string_view name, const char* what) const {
  if (name.find('\n') != std::string_view::npos) {
    return Error{Errc::Usage, std::string(what) + " must not contain a newline"};
  }
  return Done{};
}

Result<Done> Client::send_all(std::string_view bytes, Clock::time_point deadline,
                              std::string_view what) {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int r = wait_for(fd_.get(), POLLOUT, deadline);
      if (r == 0) {
        return broken(Errc::Timeout, "glockd at " + address_.text() + " did not take '" +
                                         std::string(what) + "' in time (it is not reading)");
      }
      if (r < 0) return broken(Errc::Io, "poll: " + errno_text(errno));
      continue;
    }
    const int e = errno;
    return broken(e == EPIPE ? Errc::Closed : Errc::Io,
                  "sending to glockd at " + address_.text() + " failed: " + errno_text(e));
  }
  return Done{};
}

Result<std::string> Client::read_line(Clock::time_point deadline, std::string_view what) {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  std::size_t scanned = 0;
  for (;;) {
    const auto nl = in_.find('\n', scanned);
    if (nl != std::string::npos) {
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();  // the original's \r\n
      return line;
    }
    scanned = in_.size();
    if (in_.size() > kMaxAnswerLine) {
      return broken(Errc::Protocol, "an answer line from " + address_.text() + " is over " +
                                        std::to_string(kMaxAnswerLine >> 20) + " MiB");
    }
    char buf[16384];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      return broken(Errc::Closed, "glockd at " + address_.text() +
                                      " closed the connection before answering '" +
                                      std::string(what) + "'");
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      const int e = errno;
      return broken(Errc::Io, "the connection to glockd at " + address_.text() +
                                  " failed: " + errno_text(e));
    }
    const int r = wait_for(fd_.get(), POLLIN, deadline);
    if (r < 0) return broken(Errc::Io, "poll: " + errno_text(errno));
    if (r == 0) {
      std::string msg = "no answer from glockd at " + address_.text() + " to '" +
                        std::string(what) + "' within the deadline";
      if (is_part2(what)) {
        msg += " (a server that does not know this request, such as the original glockd, "
               "never answers it)";
      }
      return broken(Errc::Timeout, msg);
    }
  }
}

Result<std::string> Client::call(std::string request, milliseconds extra) {
  const auto deadline = Clock::now() + options_.request_timeout + extra;
  request += '\n';
  const std::string_view shown(request.data(), request.size() - 1);
  if (auto s = send_all(request, deadline, shown); !s) return s.error();
  return read_line(deadline, shown);
}

Result<std::vector<std::string>> Client::call_lines(std::string request) {
  // d, sd, who and q have no end marker: a lock query for a random name
  // right behind them marks it (answers are strictly ordered).
  const std::string sentinel = sentinel_name();
  const std::string end_free = "0 Lock Not Locked: " + sentinel;
  const std::string end_held = "1 Lock Is Locked: " + sentinel;
  const std::string bytes = request + "\ni " + sentinel + "\n";
  if (auto s = send_all(bytes, Clock::now() + options_.request_timeout, request); !s) {
    return s.error();
  }
  // The whole answer has the request's deadline and the one-line size
  // bound: a server trickling or flooding lines cannot hold or fill us.
  const auto deadline = Clock::now() + options_.request_timeout;
  std::size_t total = 0;
  std::vector<std::string> lines;
  for (;;) {
    auto line = read_line(deadline, request);
    if (!line) return line.error();
    if (*line == end_free || *line == end_held) return lines;
    total += line->size() + 1;
    if (total > kMaxAnswerLine) {
      return broken(Errc::Protocol, "the answer to '" + request + "' from " + address_.text() +
                                        " is over " + std::to_string(kMaxAnswerLine >> 20) +
                                        " MiB");
    }
    lines.push_back(std::move(*line));
  }
}

// --- the link --------------------------------------------------------------

std::optional<Error> Client::check_link() {
  if (!fd_) return Error{Errc::Closed, "the connection to glockd at " + address_.text() + " is closed"};
  for (;;) {
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      // Nothing is due; keep it (bounded) so a later read sees it in order.
      if (in_.size() < 65536) in_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return broken(Errc::Closed, "glockd at " + address_.text() + " closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    const int e = errno;
    return broken(Errc::Io, "the connection to glockd at " + address_.text() + " failed: " + errno_text(e));
  }
}

Result<std::vector<std::string>> Client::raw(std::string_view request, std::size_t lines) {
  if (request.find('\n') != std::string_view::npos) {
    return Error{Errc::Usage, "a request is one line"};
  }
  const auto deadline = Clock::now() + options_.request_timeout;
  std::string bytes(request);
  bytes += '\n';
  if (auto s = send_all(bytes, deadline, request); !s) return s.error();
  std::vector<std::string> out;
  while (out.size() < lines) {
    auto line = read_line(deadline, request);
    if (!line) return line.error();
    out.push_back(std::move(*line));
  }
  return out;
}

}  // namespace glockd::client

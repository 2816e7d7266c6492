// The blocking client: connect with a deadline, one request line out, its
// answer lines in, each parsed into the call's type.
#include "client/client.hpp"

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
#include <charconv>
#include <cstring>

namespace glockd::client {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A `dump` of a large table is one line; beyond this the peer is not glockd.
constexpr std::size_t kMaxAnswerLine = 256u << 20;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string errno_text(int e) { return std::strerror(e); }

// Text from the server (or a name) for a message: at most `max` bytes, and
// no byte that a terminal could take for a control sequence.
std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (const char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

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

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "N rest": the number and what follows the space.
std::optional<std::pair<std::uint64_t, std::string_view>> number_and_rest(std::string_view line) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto n = parse_u64(line.substr(0, space));
  if (!n) return std::nullopt;
  return std::pair{*n, line.substr(space + 1)};
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

Result<bool> Client::yes_no(std::string request, std::string_view yes, std::string_view no,
                            milliseconds extra) {
  auto line = call(request, extra);
  if (!line) return line.error();
  if (starts_with(*line, yes)) return true;
  if (starts_with(*line, no)) return false;
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  if (*line == "0 disabled") return Error{Errc::Disabled, "'" + request + "' is disabled on glockd at " + address_.text()};
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::uint64_t> Client::counted(std::string request, std::string_view ok_text,
                                      std::string_view fail_text, milliseconds extra) {
  auto line = call(request, extra);
  if (!line) return line.error();
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  if (auto nr = number_and_rest(*line)) {
    const auto [n, rest] = *nr;
    if (n > 0 && starts_with(rest, ok_text)) return n;
    if (n == 0 && starts_with(rest, fail_text)) return std::uint64_t{0};
  }
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

// --- exclusive locks -------------------------------------------------------

Result<bool> Client::get(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("g " + std::string(name), "1 Lock Get Success: ", "0 Lock Get Failure: ");
}

Result<bool> Client::release(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("r " + std::string(name), "1 Lock Release Success: ", "0 Lock Release Failure: ");
}

Result<bool> Client::is_locked(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("i " + std::string(name), "1 Lock Is Locked: ", "0 Lock Not Locked: ");
}

Result<bool> Client::wait(std::uint32_t ms, std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  if (ms > kMaxWaitMs) return Error{Errc::Usage, "a wait is at most 2147483647 ms"};
  return yes_no("w " + std::to_string(ms) + " " + std::string(name), "1 Lock Get Success: ",
                "0 Lock Get Failure: ", milliseconds(ms));
}

// --- shared locks ----------------------------------------------------------

Result<std::uint64_t> Client::shared_get(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("sg " + std::string(name), "Shared Lock Get Success: ",
                 "Shared Lock Get Failure: ");
}

Result<bool> Client::shared_release(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return yes_no("sr " + std::string(name), "1 Shared Lock Release Success: ",
                "0 Shared Lock Release Failure: ");
}

Result<std::uint64_t> Client::shared_count(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("si " + std::string(name), "Shared Lock Is Locked: ", "Shared Lock Not Locked: ");
}

Result<std::uint64_t> Client::shared_wait(std::uint32_t limit, std::uint32_t ms,
                                          std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  if (ms > kMaxWaitMs) return Error{Errc::Usage, "a wait is at most 2147483647 ms"};
  if (limit == 0) return Error{Errc::Usage, "a semaphore's limit must be at least 1"};
  return counted("sw " + std::to_string(limit) + " " + std::to_string(ms) + " " +
                     std::string(name),
                 "Shared Lock Get Success: ", "Shared Lock Get Failure: ", milliseconds(ms));
}

// --- inspection ------------------------------------------------------------

namespace {

Result<std::vector<Holder>> parse_holders(std::vector<std::string> lines, const std::string& request,
                                          const Address& address) {
  if (lines.size() == 1 && lines[0] == "0 disabled") {
    return Error{Errc::Disabled, "inspection ('" + request + "') is disabled on glockd at " +
                                     address.text() + " (it runs with --dump=false)"};
  }
  std::vector<Holder> out;
  out.reserve(lines.size());
  for (auto& line : lines) {
    // The holder is an address or a registered name; an address never
    // contains ": ", so the last one separates (see glock locks for names).
    const auto sep = line.rfind(": ");
    if (sep == std::string::npos) {
      return Error{Errc::Protocol, "unexpected line in the answer to '" + request + "': '" +
                                       printable(line, 200) + "'"};
    }
    out.push_back(Holder{line.substr(0, sep), line.substr(sep + 2)});
  }
  return out;
}

}  // namespace

Result<std::vector<Holder>> Client::holders(std::optional<std::string_view> name) {
  return inspect("d", name);
}

Result<std::vector<Holder>> Client::shared_holders(std::optional<std::string_view> name) {
  return inspect("sd", name);
}

Result<std::vector<Holder>> Client::inspect(std::string_view command,
                                            std::optional<std::string_view> name) {
  if (name) {
    if (auto c = check_name(*name, "a lock name"); !c) return c.error();
  }
  const std::string request = std::string(command) + (name ? " " + std::string(*name) : "");
  auto lines = call_lines(request);
  if (!lines) return lines.error();
  return parse_holders(std::move(*lines), request, address_);
}

Result<std::string> Client::dump() { return map_line("dump"); }

Result<std::string> Client::dump_shared() { return map_line("dump shared"); }

Result<std::string> Client::map_line(std::string request) {
  auto line = call(request);
  if (!line) return line.error();
  if (*line == "0 disabled") {
    return Error{Errc::Disabled, "'dump' is disabled on glockd at " + address_.text() +
                                     " (it runs with --dump=false)"};
  }
  if (!starts_with(*line, "map[")) return broken(Errc::Protocol, unexpected(request, *line).message);
  return line;
}

// --- registry --------------------------------------------------------------

Result<Identity> Client::me() {
  auto line = call("me");
  if (!line) return line.error();
  if (starts_with(*line, "1 ")) {
    const std::string_view rest = std::string_view(*line).substr(2);
    const auto space = rest.find(' ');
    if (space != std::string_view::npos) {
      return Identity{std::string(rest.substr(0, space)), std::string(rest.substr(space + 1))};
    }
  }
  return broken(Errc::Protocol, unexpected("me", *line).message);
}

Result<Done> Client::iam(std::string_view name) {
  if (auto c = check_name(name, "a client name"); !c) return c.error();
  const std::string request = name.empty() ? "iam" : "iam " + std::string(name);
  auto line = call(request);
  if (!line) return line.error();
  if (*line == "1 ok") return Done{};
  if (*line == "0 disabled") {
    return Error{Errc::Disabled, "the registry is disabled on glockd at " + address_.text() +
                                     " (it runs with --registry=false)"};
  }
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::vector<Registration>> Client::who(std::optional<std::string_view> name) {
  if (name) {
    if (auto c = check_name(*name, "a client name"); !c) return c.error();
  }
  const std::string request = name ? "who " + std::string(*name) : "who";
  auto lines = call_lines(request);
  if (!lines) return lines.error();
  if (lines->size() == 1 && (*lines)[0] == "0 disabled") {
    return Error{Errc::Disabled, "'who' is disabled on glockd at " + address_.text() +
                                     " (it needs both --dump and --registry)"};
  }
  std::vector<Registration> out;
  for (auto& line : *lines) {
    const auto sep = line.find(": ");  // an address never contains ": "
    if (sep == std::string::npos) {
      return Error{Errc::Protocol, "unexpected line in the answer to 'who': '" +
                                       printable(line, 200) + "'"};
    }
    out.push_back(Registration{line.substr(0, sep), line.substr(sep + 2)});
  }
  return out;
}

Result<std::vector<Stat>> Client::stats() {
  auto lines = call_lines("q");
  if (!lines) return lines.error();
  std::vector<Stat> out;
  for (auto& line : *lines) {
    const auto sep = line.find(": ");
    std::optional<std::uint64_t> v;
    if (sep != std::string::npos) v = parse_u64(std::string_view(line).substr(sep + 2));
    if (!v) return Error{Errc::Protocol, "unexpected line in the answer to 'q': '" + printable(line, 200) + "'"};
    out.push_back(Stat{line.substr(0, sep), *v});
  }
  return out;
}

// --- Part 2 ----------------------------------------------------------------

Result<std::uint64_t> Client::token(std::string_view name) {
  if (auto c = check_name(name, "a lock name"); !c) return c.error();
  return counted("t " + std::string(name), "Lock Token: ", "Lock Token Failure: ");
}

namespace {

std::optional<Released> parse_released(std::string_view rest) {
  const auto space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto e = parse_u64(rest.substr(0, space));
  auto s = parse_u64(rest.substr(space + 1));
  if (!e || !s) return std::nullopt;
  return Released{*e, *s};
}

}  // namespace

Result<Released> Client::release_all() {
  auto line = call("ra");
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Release All Success: ";
  if (starts_with(*line, ok)) {
    if (auto r = parse_released(std::string_view(*line).substr(ok.size()))) return *r;
  }
  return broken(Errc::Protocol, unexpected("ra", *line).message);
}

Result<std::uint32_t> Client::grace(std::uint32_t ms) {
  const std::string request = "grace " + std::to_string(ms);
  auto line = call(request);
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Grace Set: ";
  if (starts_with(*line, ok)) {
    if (auto v = parse_u64(std::string_view(*line).substr(ok.size())); v && *v <= kMaxWaitMs) {
      return static_cast<std::uint32_t>(*v);
    }
  }
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
}

Result<std::string> Client::session() {
  auto line = call("session");
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Session: ";
  if (starts_with(*line, ok) && line->size() > ok.size()) return line->substr(ok.size());
  if (starts_with(*line, "0 Bad Request: ")) return refused("session", *line);
  return broken(Errc::Protocol, unexpected("session", *line).message);
}

Result<std::optional<Released>> Client::resume(std::string_view token) {
  if (token.empty() || token.find_first_of(" \t\r\n") != std::string_view::npos) {
    return Error{Errc::Usage, "a session token is one word"};
  }
  const std::string request = "resume " + std::string(token);
  auto line = call(request);
  if (!line) return line.error();
  constexpr std::string_view ok = "1 Resume Success: ";
  if (starts_with(*line, ok)) {
    if (auto r = parse_released(std::string_view(*line).substr(ok.size()))) {
      return std::optional<Released>(*r);
    }
  }
  if (*line == "0 Resume Failure") return std::optional<Released>();
  if (starts_with(*line, "0 Bad Request: ")) return refused(request, *line);
  return broken(Errc::Protocol, unexpected(request, *line).message);
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

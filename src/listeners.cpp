// Listening sockets and the pidfile. Everything here runs before the loop
// starts, so plain blocking system calls are fine.
#include "listeners.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "crash.hpp"

namespace glockd {

namespace {

constexpr int kListenBacklog = 4096;

std::string errno_text(int err) { return std::strerror(err); }

// A glockd that was just killed keeps its listeners for some milliseconds
// after it has been reaped (io_uring drops their file references from a
// kernel worker), so a restart at once would find its port bound or its
// socket accepting. A port or socket is believed taken only once it has
// stayed so for this long.
constexpr auto kBusyRetryFor = std::chrono::milliseconds(1000);

// The time left to retry something busy: `again` says so (once) and sleeps
// `step`, doubled each time with `backoff`, never past the deadline.
class BusyRetry {
 public:
  BusyRetry(std::chrono::milliseconds step, bool backoff)
      : step_(step), backoff_(backoff), deadline_(Clock::now() + kBusyRetryFor) {}

  // False once the time is up.
  bool again(const std::string& what) {
    const auto now = Clock::now();
    if (now >= deadline_) return false;
    if (!logged_) spdlog::info("{}; retrying for 1 s", what);
    logged_ = true;
    std::this_thread::sleep_for(std::min<Clock::duration>(step_, deadline_ - now));
    if (backoff_) step_ *= 2;
    return true;
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds step_;
  bool backoff_;
  Clock::time_point deadline_;
  bool logged_ = false;
};

std::string format_endpoint(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// Opens one TCP listener on host:port. dual_stack clears IPV6_V6ONLY. On
// failure sets `error` (what to change) and `err` (the errno behind it).
UniqueFd listen_tcp(const std::string& host, int port, bool dual_stack, std::string& error,
                    int& err) {
  err = EINVAL;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    error = "--bind " + host + ": not a numeric IPv4 or IPv6 address (" + gai_strerror(rc) + ")";
    return UniqueFd{};
  }
  UniqueFd fd{::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) {
    err = errno;
    error = "cannot create a socket for " + format_endpoint(host, port) + ": " + errno_text(err);
    freeaddrinfo(res);
    return fd;
  }
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) {
    const int v6only = dual_stack ? 0 : 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  int rc = 0;
  for (BusyRetry retry(std::chrono::milliseconds(10), false);;) {
    rc = ::bind(fd.get(), res->ai_addr, res->ai_addrlen);
    err = rc == 0 ? 0 : errno;
    if (err != EADDRINUSE ||
        !retry.again("port " + std::to_string(port) + " on " + host + " in use"))
      break;
  }
  freeaddrinfo(res);
  if (rc != 0) {
    if (err == EADDRINUSE)
      error = "port " + std::to_string(port) + " on " + host +
              " is already in use: stop the other server or choose another port";
    else if (err == EADDRNOTAVAIL)
      error = "--bind " + host + ": no interface of this machine has that address";
    else if (err == EACCES)
      error = "port " + std::to_string(port) + " needs privileges: choose a port above 1023";
    else
      error = "cannot bind " + format_endpoint(host, port) + ": " + errno_text(err);
    return UniqueFd{};
  }
  if (::listen(fd.get(), kListenBacklog) != 0) {
    err = errno;
    error = "cannot listen on " + format_endpoint(host, port) + ": " + errno_text(err);
    return UniqueFd{};
  }
  return fd;
}

// One listener per --bind address, or one dual-stack [::] (0.0.0.0 when the
// machine has no IPv6).
std::string open_port(const Config& config, int port, Transport transport,
                      std::vector<Listener>& out) {
  std::string error;
  int err = 0;
  if (config.bind.empty()) {
    UniqueFd fd = listen_tcp("::", port, true, error, err);
    std::string where = format_endpoint("::", port);
    if (!fd && (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) {  // no IPv6 here
      error.clear();
      fd = listen_tcp("0.0.0.0", port, false, error, err);
      where = format_endpoint("0.0.0.0", port);
    }
    if (!fd) return error;
    out.push_back(Listener{std::move(fd), transport, where, {}});
    return {};
  }
  for (const std::string& host : config.bind) {
    UniqueFd fd = listen_tcp(host, port, false, error, err);
    if (!fd) return error;
    out.push_back(Listener{std::move(fd), transport, format_endpoint(host, port), {}});
  }
  return {};
}

bool fill_sun_path(sockaddr_un& addr, const std::string& path) {
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::string bind_error(const std::string& path, int err) {
  if (err == ENOENT) return "--unix " + path + ": the directory does not exist; create it first";
  if (err == EACCES)
    return "--unix " + path + ": no permission to create it; choose a writable directory";
  return "--unix " + path + ": " + errno_text(err);
}

// Restores the umask it replaced when it goes out of scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

// 0 when something listens on the unix socket at addr, else the errno of the
// connect (ECONNREFUSED: a stale file). Non-blocking: a listener whose
// backlog is full (EAGAIN) must not hang the start.
int probe_unix(const sockaddr_un& addr) {
  UniqueFd probe{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!probe) return errno;
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ||
      errno == EAGAIN)
    return 0;
  return errno;
}

// The socket file must never exist under its name with another mode than
// --unix-mode, nor before it listens, and must never replace another
// server's socket. So the socket is bound to a temporary name in the same
// directory under a umask that gives it its mode from birth, made to listen,
// and then link()ed to the real path, which fails if anything is there: a
// stale file is removed first, and a glockd starting at the same moment
// loses the race with a message instead of taking the path over.
std::string open_unix(const Config& config, std::vector<Listener>& out) {
  const std::string& path = config.unix_path;
  sockaddr_un addr{};
  if (!fill_sun_path(addr, path))
    return "--unix " + path + ": path too long (at most " +
           std::to_string(sizeof addr.sun_path - 1) + " bytes)";
  const std::string in_use =
      "--unix " + path + ": another server is listening there; stop it or choose another path";

  struct stat st{};
  bool stale = false;  // st is then the stale socket file to replace
  if (::lstat(path.c_str(), &st) == 0) {
    stale = true;
    if (!S_ISSOCK(st.st_mode))
      return "--unix " + path + ": exists and is not a socket; remove it or choose another path";
    // A socket file: live if someone accepts on it, stale after a crash.
    // Each probe is a connection the server there sees (or one more in its
    // backlog if it does not accept), so they thin out: 8 in the second.
    for (BusyRetry retry(std::chrono::milliseconds(10), true);;) {
      const int err = probe_unix(addr);
      if (err == ECONNREFUSED || err == ENOENT) break;  // stale, or gone meanwhile
      if (err != 0)
        return "--unix " + path + ": cannot check the existing socket: " + errno_text(err);
      if (!retry.again("--unix " + path + ": a server still accepts there")) return in_use;
    }
  }

  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
  const std::string tmp = dir + ".glockd." + std::to_string(::getpid()) + ".tmp";
  sockaddr_un tmp_addr{};
  const bool via_tmp = fill_sun_path(tmp_addr, tmp);

  UniqueFd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) return "cannot create a unix socket: " + errno_text(errno);
  {
    // bind creates the file 0777 & ~umask.
    const ScopedUmask mask(static_cast<mode_t>(~config.unix_mode & 0777));
    if (via_tmp) {
      // A leftover of a killed glockd that had our pid: the name is ours.
      ::unlink(tmp.c_str());
      if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&tmp_addr), sizeof tmp_addr) != 0)
        return bind_error(path, errno);
    } else {
      // The temporary name would not fit in sun_path: bind the real path
      // itself (the stale file, if any, has to go first; it is not listening
      // until listen() below).
      if (stale) ::unlink(path.c_str());
      if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return ::lstat(path.c_str(), &st) == 0 ? in_use : bind_error(path, errno);
    }
  }
  const std::string& bound = via_tmp ? tmp : path;
  remove_on_crash(bound);
  const auto give_up = [&](const char* what) {
    const int err = errno;
    remove_if_ours(bound);
    return "--unix " + path + ": " + what + ": " + errno_text(err);
  };
  // Only bits a umask cannot give (setuid, setgid, sticky) need a chmod.
  if ((config.unix_mode & ~0777u) != 0 && ::chmod(bound.c_str(), config.unix_mode) != 0)
    return give_up("cannot set its mode");
  if (::listen(fd.get(), kListenBacklog) != 0) return give_up("cannot listen");
  if (via_tmp) {
    // The stale file found above, if it is still that one: a glockd that
    // started at the same moment may have put its live socket there since.
    struct stat now{};
    if (stale && ::lstat(path.c_str(), &now) == 0 && now.st_dev == st.st_dev &&
        now.st_ino == st.st_ino)
      ::unlink(path.c_str());
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      remove_if_ours(tmp);
      if (err == EEXIST) return in_use;  // another glockd took the path meanwhile
      errno = err;
      return "--unix " + path + ": cannot move the socket into place: " + errno_text(err);
    }
    remove_on_crash(path);
    remove_if_ours(tmp);
  }
  out.push_back(Listener{std::move(fd), Transport::Unix, path, path});
  return {};
}

}  // namespace

const char* transport_name(Transport t) {
  switch (t) {
    case Transport::Tcp: return "tcp";
    case Transport::Unix: return "unix";
    case Transport::Ws: return "ws";
  }
  return "?";
}

void tune_tcp_listener(int fd, int keepalive_seconds) {
  const int one = 1;
  // Replies are tiny and already batched per loop turn; Nagle would only
  // delay pipelined answers behind the peer's delayed ACK.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (keepalive_seconds <= 0) return;
  // A peer that vanished (power loss, cable) never sends FIN or RST; keepalive
  // turns that into an error after idle + count * interval seconds, which
  // releases its locks. TCP_USER_TIMEOUT bounds the case of unacked data.
  const int interval = keepalive_seconds >= 6 ? keepalive_seconds / 3 : 2;
  const int count = 3;
  const unsigned user_timeout_ms =
      static_cast<unsigned>(keepalive_seconds + interval * count) * 1000u;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_seconds, sizeof keepalive_seconds);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

ListenResult open_listeners(const Config& config) {
  ListenResult result;
  if (config.port != 0) {
    result.error = open_port(config, config.port, Transport::Tcp, result.listeners);
    if (!result.error.empty()) return result;
  }
  if (config.ws_port != 0) {
    result.error = open_port(config, config.ws_port, Transport::Ws, result.listeners);
    if (!result.error.empty()) return result;
  }
  if (!config.unix_path.empty()) {
    result.error = open_unix(config, result.listeners);
    if (!result.error.empty()) return result;
  }
  for (Listener& l : result.listeners)
    if (l.transport != Transport::Unix) tune_tcp_listener(l.fd.get(), config.keepalive_seconds);
  return result;
}

std::string Pidfile::acquire(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)};
  if (!fd) {
    const int err = errno;
    return "--pidfile " + path + ": cannot open it: " + errno_text(err) +
           (err == ENOENT ? " (create the directory first)" : "");
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return "--pidfile " + path + ": another glockd (pid " + pid +
           ") is running with this pidfile; stop it or choose another pidfile";
  }
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    return "--pidfile " + path + ": cannot write it: " + errno_text(errno);
  fd_ = std::move(fd);
  path_ = path;
  remove_on_crash(path_);
  return {};
}

void Pidfile::remove() {
  if (!fd_) return;
  remove_if_ours(path_);
  fd_.reset();
  path_.clear();
}

}  // namespace glockd

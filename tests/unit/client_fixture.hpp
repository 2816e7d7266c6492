// What the client library's tests share: a real glockd started on free
// ports ($GLOCKD_BIN), a throw-away PKI (tests/tlscerts.py, run with the
// python3 in $GLOCKD_PYTHON from $GLOCKD_TLSCERTS), and small helpers.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "client/address.hpp"
#include "client/client.hpp"
#include "client/tls.hpp"
#include "fd.hpp"

namespace glockd::client_test {

using namespace glockd::client;
using namespace std::chrono_literals;
using glockd::UniqueFd;
using SteadyClock = std::chrono::steady_clock;

// Only there so that nothing hangs: no test asserts how fast anything is.
constexpr auto kPatience = 20s;

// Polls `pred` until it holds (true) or kPatience passes (false).
template <class Pred>
inline bool eventually(Pred pred) {
  const auto end = SteadyClock::now() + kPatience;
  while (!pred()) {
    if (SteadyClock::now() > end) return false;
    std::this_thread::sleep_for(2ms);  // the pause of a poll, not a synchronisation
  }
  return true;
}

// The value of a call that must succeed (a failure throws its message,
// which GoogleTest reports as the test's failure).
template <class T>
inline T ok(Result<T> r) {
  if (!r) throw std::runtime_error(std::string(errc_name(r.error().code)) + ": " + r.error().message);
  return std::move(*r);
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The error code of a call that must fail (nullopt if it succeeded).
template <class T>
inline std::optional<Errc> failure(const Result<T>& r) {
  if (r) return std::nullopt;
  return r.error().code;
}

// A TCP socket bound to the numeric address `host`, port 0 (the kernel
// picks); its port in `port`. Dual-stack for "::". Empty if it cannot.
inline UniqueFd bound_tcp(const char* host, std::uint16_t& port) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  if (::getaddrinfo(host, "0", &hints, &ai) != 0) return {};
  UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int off = 0;
  if (fd && ai->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if (!fd || ::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::getsockname(fd.get(), sa, &len) != 0) fd.reset();
  ::freeaddrinfo(ai);
  char serv[NI_MAXSERV] = "0";
  if (fd) ::getnameinfo(sa, len, nullptr, 0, serv, sizeof serv, NI_NUMERICSERV);
  port = static_cast<std::uint16_t>(std::atoi(serv));
  return fd;
}

// A port that was free for IPv4 and IPv6 a moment ago (the daemon is
// restarted on another one if it was taken in between).
inline std::uint16_t free_port() {
  std::uint16_t port = 0;
  if (!bound_tcp("::", port)) bound_tcp("0.0.0.0", port);
  return port;
}

inline bool have_ipv6_loopback() {
  std::uint16_t port = 0;
  return static_cast<bool>(bound_tcp("::1", port));
}

// One glockd process with its own directory (unix socket and log). With
// `tls` its TCP port is checked over TLS with those certificates (give the
// --ssl flags in `extra`: ssl_args()).
class Daemon {
 public:
  explicit Daemon(std::vector<std::string> extra = {}, std::shared_ptr<const TlsContext> tls = {})
      : extra_(std::move(extra)), tls_(std::move(tls)) {
    char dir[] = "/tmp/glockd-client-XXXXXX";
    if (::mkdtemp(dir) != nullptr) dir_ = dir;
  }
  ~Daemon() {
    stop();
    ::unlink(unix_path().c_str());
    ::unlink(log_path().c_str());
    ::rmdir(dir_.c_str());
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // start() checks the TCP port too (false: only the unix socket).
  bool check_tcp = true;

  std::string unix_path() const { return dir_ + "/sock"; }
  std::string log_path() const { return dir_ + "/log"; }
  std::uint16_t port() const { return port_; }

  // Starts glockd and returns once it has answered a `q` on its unix socket
  // and on TCP (TLS): "" then, else what went wrong.
  std::string start() {
    const char* bin = std::getenv("GLOCKD_BIN");
    if (bin == nullptr || dir_.empty()) return "set GLOCKD_BIN to the glockd binary (and have /tmp)";
    for (int attempt = 0; attempt < 10; ++attempt) {
      port_ = free_port();
      do ws_port_ = free_port();
      while (ws_port_ == port_);
      std::vector<std::string> args = {bin, "--port", std::to_string(port_), "--ws", std::to_string(ws_port_),
                                       "--unix", unix_path()};
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const int log_fd = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      pid_ = ::fork();
      if (pid_ == 0) {
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        ::execv(bin, argv.data());
        _exit(127);
      }
      ::close(log_fd);
      if (pid_ < 0) return "fork failed";
      bool exited = false;
      const bool up = eventually([&] {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) return exited = true;  // e.g. a port taken meanwhile
        return answers("unix:" + unix_path(), nullptr) &&
               (!check_tcp || answers((tls_ ? "tls://127.0.0.1:" : "127.0.0.1:") +
                                          std::to_string(port_), tls_));
      });
      if (up && !exited) return "";
      if (!exited) {
        stop();
        return "glockd did not answer within the patience; its log:\n" + log();
      }
      pid_ = -1;
    }
    return "glockd kept exiting at start; its log:\n" + log();
  }

  // SIGTERM (SIGKILL when `hard`) and reap; the wait status.
  int stop(bool hard = false) {
    if (pid_ <= 0) return -1;  // not running (never kill(-1, ...))
    ::kill(pid_, hard ? SIGKILL : SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

  // Sends `sig` (e.g. SIGSTOP, SIGCONT) to the running daemon.
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  std::string log() const {
    std::ifstream f(log_path());
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  // One gauge or counter of GET /metrics on the websocket port.
  std::optional<std::uint64_t> metric(const std::string& name) const {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ws_port_);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return std::nullopt;
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) return std::nullopt;
    std::string body;
    char buf[8192];
    for (ssize_t n; (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0;) body.append(buf, static_cast<std::size_t>(n));
    const auto at = body.find("\n" + name + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stoull(body.substr(at + name.size() + 2));
  }

 private:
  static bool answers(const std::string& where, std::shared_ptr<const TlsContext> tls) {
    Options o;
    o.connect_timeout = 1s;
    o.tls = std::move(tls);
    auto c = Client::connect(ok(parse_address(where)), o);
    return c && c->stats().ok();
  }

  std::vector<std::string> extra_;
  std::shared_ptr<const TlsContext> tls_;
  std::string dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t ws_port_ = 0;
};

// SIGTERM ends it cleanly, and nothing in its log says a sanitizer tripped.
inline void expect_clean_stop(Daemon& d) {
  const int status = d.stop();
  if (status == -1) return;  // it never started: SetUp said why
  const std::string log = d.log();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n" << log;
  EXPECT_FALSE(contains(log, "Sanitizer") || contains(log, "runtime error:")) << log;
}

// Runs argv (stdout and stderr to /dev/null unless `quiet` is false); its
// exit status, or -1.
inline int run(const std::vector<std::string>& args, bool quiet = true) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The test PKI of tests/tlscerts.py, made once per process in a temporary
// directory (removed at exit): ca, other_ca, server, client (CN=client-one),
// client2 (CN=client-two), other_client (signed by other_ca), weak, ...;
// pem("x") is x.pem, key("x") x.key.
class Pki {
 public:
  static const Pki& get() {
    static Pki pki;
    if (!pki.error_.empty()) throw std::runtime_error(pki.error_);
    return pki;
  }
  ~Pki() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  const std::string& dir() const { return dir_; }
  std::string pem(const std::string& name) const { return dir_ + "/" + name + ".pem"; }
  std::string key(const std::string& name) const { return dir_ + "/" + name + ".key"; }

 private:
  Pki() {
    const char* python = std::getenv("GLOCKD_PYTHON");
    const char* script = std::getenv("GLOCKD_TLSCERTS");
    char dir[] = "/tmp/glockd-pki-XXXXXX";
    if (script == nullptr || ::mkdtemp(dir) == nullptr) {
      error_ = "set GLOCKD_TLSCERTS to tests/tlscerts.py (and have /tmp)";
      return;
    }
    dir_ = dir;
    if (run({python != nullptr ? python : "/usr/bin/python3", script, dir_}) != 0) {
      error_ = std::string("tests/tlscerts.py failed to make the PKI in ") + dir_;
    }
  }
  std::string dir_;
  std::string error_;
};

// The client's TLS files: our certificate `client` (none when empty)
// checked against CA `ca`.
inline std::shared_ptr<const TlsContext> tls_as(const std::string& client, const std::string& ca = "ca") {
  const Pki& p = Pki::get();
  TlsFiles f;
  if (!client.empty()) {
    f.cert = p.pem(client);
    f.key = p.key(client);
  }
  f.ca = p.pem(ca);
  return ok(load_tls(f));
}

// glockd's flags for TLS on its TCP port with the PKI's server certificate.
inline std::vector<std::string> ssl_args(std::vector<std::string> more = {}) {
  const Pki& p = Pki::get();
  std::vector<std::string> a = {"--ssl", "--ssl-cert", p.pem("server"), "--ssl-key", p.key("server"),
                                "--ssl-ca", p.pem("ca")};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

}  // namespace glockd::client_test

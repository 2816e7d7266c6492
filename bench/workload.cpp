// Targets, request streams and the RESP reply parser of the load generator.
#include "workload.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace bench {

bool make_target(const std::string& host, int port, const std::string& unix_path, Target& out,
                 std::string& error) {
  out = Target{};
  if (!unix_path.empty()) {
    auto& sun = reinterpret_cast<sockaddr_un&>(out.addr);
    if (unix_path.size() >= sizeof sun.sun_path) {
      error = "unix socket path too long: " + unix_path;
      return false;
    }
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, unix_path.c_str(), unix_path.size() + 1);
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + unix_path.size() + 1);
    out.describe = "unix:" + unix_path;
    return true;
  }
  if (port <= 0 || port > 65535) {
    error = "--port must be 1..65535 (or use --unix PATH)";
    return false;
  }
  if (host == "127.0.0.1" || host == "localhost") {
    auto& sin = reinterpret_cast<sockaddr_in&>(out.addr);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<std::uint16_t>(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    out.len = sizeof sin;
    out.describe = "127.0.0.1:" + std::to_string(port);
    return true;
  }
  if (host == "::1") {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(out.addr);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(static_cast<std::uint16_t>(port));
    sin6.sin6_addr = in6addr_loopback;
    out.len = sizeof sin6;
    out.describe = "[::1]:" + std::to_string(port);
    return true;
  }
  error = "refusing host '" + host + "': the load generator connects only to 127.0.0.1, ::1 "
          "or a unix socket (--unix PATH)";
  return false;
}

int start_connect(const Target& t, int& err) {
  const int fd = ::socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  if (t.addr.ss_family != AF_UNIX) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0 &&
      errno != EINPROGRESS && errno != EAGAIN) {
    err = errno;
    ::close(fd);
    return -1;
  }
  err = 0;
  return fd;
}

void close_abortive(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

bool parse_workload(std::string_view s, Workload& w) {
  if (s == "gr") w = Workload::GetRelease;
  else if (s == "contend") w = Workload::Contend;
  else if (s == "i") w = Workload::Inspect;
  else if (s == "sgsr") w = Workload::Shared;
  else if (s == "wait") w = Workload::Wait;
  else return false;
  return true;
}

const char* workload_name(Workload w) {
  switch (w) {
    case Workload::GetRelease: return "gr";
    case Workload::Contend: return "contend";
    case Workload::Inspect: return "i";
    case Workload::Shared: return "sgsr";
    case Workload::Wait: return "wait";
  }
  return "?";
}

std::string line_request(std::string_view cmd, std::string_view key) {
  std::string s;
  s.reserve(cmd.size() + key.size() + 2);
  s.append(cmd).append(" ").append(key).append("\n");
  return s;
}

std::string resp_command(const std::vector<std::string_view>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args) {
    s += "$" + std::to_string(a.size()) + "\r\n";
    s.append(a).append("\r\n");
  }
  return s;
}

bool shares_keys(Workload w) { return w == Workload::Contend || w == Workload::Wait; }

std::shared_ptr<const RequestTable> make_table(Workload w, Proto p, unsigned keys,
                                               unsigned wait_ms, std::uint64_t conn_index) {
  auto t = std::make_shared<RequestTable>();
  const bool shared = shares_keys(w);
  const unsigned n = shared ? (keys == 0 ? 1 : keys) : 1;
  for (unsigned k = 0; k < n; ++k) {
    const std::string key =
        shared ? "bench:c" + std::to_string(k) : "bench:k" + std::to_string(conn_index);
    if (p == Proto::Resp) {
      // Redis has no lock commands: SET NX takes, DEL releases; i and sg
      // have no equivalent, so every workload maps onto this pair.
      t->first.push_back(resp_command({"SET", key, "1", "NX"}));
      t->second.push_back(resp_command({"DEL", key}));
      continue;
    }
    switch (w) {
      case Workload::GetRelease:
      case Workload::Contend:
        t->first.push_back(line_request("g", key));
        t->second.push_back(line_request("r", key));
        break;
      case Workload::Inspect:
        t->first.push_back(line_request("i", key));
        t->second.push_back(line_request("i", key));
        break;
      case Workload::Shared:
        t->first.push_back(line_request("sg", key));
        t->second.push_back(line_request("sr", key));
        break;
      case Workload::Wait:
        t->first.push_back(line_request("w " + std::to_string(wait_ms), key));
        t->second.push_back(line_request("r", key));
        break;
    }
  }
  return t;
}

namespace {

// Length of the line at the front of buf including "\r\n"; 0 if incomplete.
std::size_t resp_line(std::string_view buf) {
  const std::size_t nl = buf.find("\r\n");
  return nl == std::string_view::npos ? 0 : nl + 2;
}

}  // namespace

std::size_t parse_one_resp(std::string_view buf, Reply& r) {
  if (buf.empty()) return 0;
  const std::size_t line = resp_line(buf);
  if (line == 0) return buf.size() > 4096 ? SIZE_MAX : 0;
  const std::string_view body = buf.substr(1, line - 3);
  switch (buf[0]) {
    case '+':
      r = Reply::Ok;
      return line;
    case '-':
      r = Reply::Error;
      return line;
    case ':':
      r = (body == "0") ? Reply::Fail : Reply::Ok;
      return line;
    case '_':  // RESP3 null
      r = Reply::Fail;
      return line;
    case '$': {
      long long n = 0;
      auto [p, ec] = std::from_chars(body.data(), body.data() + body.size(), n);
      if (ec != std::errc{}) return SIZE_MAX;
      if (n < 0) {
        r = Reply::Fail;  // null bulk: SET NX found the key taken
        return line;
      }
      const std::size_t total = line + static_cast<std::size_t>(n) + 2;
      if (buf.size() < total) return 0;
      r = Reply::Ok;
      return total;
    }
    default:
      return SIZE_MAX;
  }
}

}  // namespace bench

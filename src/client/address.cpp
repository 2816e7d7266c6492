// Parsing glock's server addresses.
#include "client/address.hpp"
#include "client/text.hpp"

#include <sys/un.h>

#include <charconv>

namespace glockd::client {

namespace {

Error bad(std::string_view text, const std::string& why) {
  return Error{Errc::Address, "bad server address '" + std::string(text) + "': " + why +
                                  " (use unix:/path, /path, host:port, tcp://host:port, "
                                  "[ipv6]:port or tls://host:port)"};
}

Result<std::uint16_t> parse_port(std::string_view all, std::string_view p) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value == 0 ||
      value > 65535) {
    return bad(all, "the port must be a number from 1 to 65535, not '" + std::string(p) + "'");
  }
  return static_cast<std::uint16_t>(value);
}

Result<Address> parse_unix(std::string_view all, std::string_view path) {
  if (path.empty()) return bad(all, "the socket path is empty");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return bad(all, "a unix socket path must be shorter than " +
                        std::to_string(sizeof(sockaddr_un{}.sun_path)) + " bytes");
  }
  if (path.find('\0') != std::string_view::npos) return bad(all, "the path contains a NUL byte");
  Address a;
  a.kind = Address::Kind::Unix;
  a.path = std::string(path);
  return a;
}

Result<Address> parse_tcp(std::string_view all, std::string_view hp) {
  Address a;
  a.kind = Address::Kind::Tcp;
  std::string_view port;
  if (starts_with(hp, "[")) {
    const auto close = hp.find(']');
    if (close == std::string_view::npos) return bad(all, "'[' without ']'");
    a.host = std::string(hp.substr(1, close - 1));
    const auto rest = hp.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return bad(all, "expected ':PORT' after ']'");
      port = rest.substr(1);
      if (port.empty()) return bad(all, "the port after ':' is missing");
    }
  } else {
    const auto colon = hp.rfind(':');
    if (colon != std::string_view::npos && hp.find(':') != colon) {
      // Two colons or more and no brackets: a bare IPv6 address, default port.
      a.host = std::string(hp);
    } else if (colon != std::string_view::npos) {
      a.host = std::string(hp.substr(0, colon));
      port = hp.substr(colon + 1);
      if (port.empty()) return bad(all, "the port after ':' is missing");
    } else {
      a.host = std::string(hp);
    }
  }
  if (a.host.empty()) return bad(all, "the host is empty");
  if (a.host.find_first_of(" \t\r\n/") != std::string::npos) {
    return bad(all, "the host contains a space or '/'");
  }
  if (!port.empty()) {
    auto p = parse_port(all, port);
    if (!p) return p.error();
    a.port = *p;
  }
  return a;
}

}  // namespace

std::string Address::text() const {
  if (kind == Kind::Unix) return "unix:" + path;
  const bool v6 = host.find(':') != std::string::npos;
  return (tls ? "tls://" : "") + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<Address> parse_address(std::string_view text) {
  if (text.empty()) return bad(text, "it is empty");
  if (starts_with(text, "unix:")) return parse_unix(text, text.substr(5));
  if (text[0] == '/' || starts_with(text, "./") || starts_with(text, "../")) {
    return parse_unix(text, text);
  }
  if (starts_with(text, "tcp://") || starts_with(text, "tls://")) {
    auto rest = text.substr(6);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    auto a = parse_tcp(text, rest);
    if (a) a->tls = starts_with(text, "tls://");
    return a;
  }
  if (text.find("://") != std::string_view::npos) {
    return bad(text, "unknown scheme '" + std::string(text.substr(0, text.find("://"))) + "'");
  }
  return parse_tcp(text, text);
}

DefaultServer default_server(const char* env, bool socket_exists) {
  if (env != nullptr && *env != '\0') return {env, "GLOCKD_SERVER"};
  if (socket_exists) return {std::string("unix:") + kPackagedSocket, "the packaged socket"};
  return {"127.0.0.1:" + std::to_string(kDefaultPort), "the default"};
}

}  // namespace glockd::client

// Where the daemon is: the forms of glock's --server (unix:/path, /path,
// tcp://host:port, host:port, [v6addr]:port, tls://host:port) and the
// default's order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "client/result.hpp"

namespace glockd::client {

inline constexpr std::uint16_t kDefaultPort = 9999;
inline constexpr const char* kPackagedSocket = "/run/glockd/socket";

struct Address {
  enum class Kind { Unix, Tcp } kind = Kind::Tcp;
  std::string path;  // Unix
  std::string host;  // Tcp: a name, an IPv4 address or an IPv6 address (no brackets)
  std::uint16_t port = kDefaultPort;
  bool tls = false;  // Tcp: tls://, the connection speaks TLS (client/tls.hpp)

  // As the user would write it back: unix:/path, host:port, [v6]:port, or
  // tls://host:port and tls://[v6]:port.
  std::string text() const;
};

// Parses one address; a missing port is 9999.
Result<Address> parse_address(std::string_view text);

// Where a client connects when no --server is given: $GLOCKD_SERVER if set
// (and not empty), else /run/glockd/socket when it exists, else
// 127.0.0.1:9999. `env` is the variable's value (null when unset) and
// `socket_exists` whether the packaged socket is there, so this stays pure.
// `source` says which rule chose it, for messages.
struct DefaultServer {
  std::string text;
  const char* source;
};
DefaultServer default_server(const char* env, bool socket_exists);

}  // namespace glockd::client

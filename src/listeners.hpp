// Listeners: opening the TCP, unix and websocket listening sockets (or
// adopting the ones systemd hands over), and the pidfile.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "fd.hpp"

namespace glockd {

enum class Transport : unsigned char { Tcp = 0, Unix = 1, Ws = 2 };
inline constexpr int kTransportCount = 3;
const char* transport_name(Transport t);

struct Listener {
  UniqueFd fd;
  Transport transport;
  std::string where;      // for logs: "0.0.0.0:9999", "/run/glockd/socket"
  std::string unix_path;  // set when we created the socket file and must remove it
};

// Errors are returned as text that says what to change.
struct ListenResult {
  std::vector<Listener> listeners;
  std::string error;
};

ListenResult open_listeners(const Config& config);

// Sets keepalive and TCP_NODELAY on a TCP listener; accepted sockets inherit
// them, so no per-accept system calls are needed.
void tune_tcp_listener(int fd, int keepalive_seconds);

class Pidfile {
 public:
  // Creates and flock()s `path`, writes our pid. Empty error on success.
  std::string acquire(const std::string& path);
  void remove();
  ~Pidfile() { remove(); }

 private:
  UniqueFd fd_;
  std::string path_;
};

}  // namespace glockd

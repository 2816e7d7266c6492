// sd-daemon calls for socket activation and readiness.
#include "systemd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace glockd {

Activation adopt_systemd_sockets(int keepalive_seconds) {
  Activation a;
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);  // 1: unset LISTEN_* for children
  if (n < 0) {
    a.error = std::string("cannot take the sockets systemd passed: ") + std::strerror(-n);
    return a;
  }
  if (n == 0) return a;
  a.activated = true;
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    const std::string_view name = names && names[i] ? names[i] : "";
    Transport t;
    if (name == "tcp") {
      t = Transport::Tcp;
    } else if (name == "unix") {
      t = Transport::Unix;
    } else if (name == "ws" || name == "http") {
      t = Transport::Ws;
    } else if (sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1) > 0) {
      t = Transport::Unix;
    } else if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
      t = Transport::Tcp;
    } else {
      a.error = "systemd passed fd " + std::to_string(fd) + " named '" + std::string(name) +
                "' that is not a listening stream socket; name sockets tcp, unix or ws "
                "(FileDescriptorName=)";
      break;
    }
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
      a.error = "systemd passed fd " + std::to_string(fd) + " (" + std::string(name) +
                ") that is not a listening stream socket (use ListenStream=)";
      break;
    }
    // Pending accepts are also taken with a direct accept4(), which must not block.
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (t != Transport::Unix) tune_tcp_listener(fd, keepalive_seconds);
    a.listeners.push_back(
        Listener{UniqueFd{fd}, t,
                 "systemd fd " + std::to_string(fd) +
                     (name.empty() ? std::string(" (unnamed)") : " named " + std::string(name)),
                 {}});
  }
  if (names) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  return a;
}

void notify_ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}

void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=shutting down"); }

}  // namespace glockd

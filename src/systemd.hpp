// systemd integration through libsystemd's sd-daemon: socket activation
// (LISTEN_FDS with FileDescriptorName=tcp|unix|ws) and sd_notify readiness.
// Run by hand, none of this does anything.
#pragma once

#include <string>
#include <vector>

#include "listeners.hpp"

namespace glockd {

struct Activation {
  bool activated = false;           // systemd passed us sockets
  std::vector<Listener> listeners;
  std::string error;
};

// Takes the sockets systemd passed, telling them apart by name (tcp, unix,
// ws) or, for unnamed ones, by address family.
Activation adopt_systemd_sockets(int keepalive_seconds);

void notify_ready(const std::string& status);
void notify_stopping();

}  // namespace glockd

// The link's low-level pieces, shared by plain sockets and TLS: one step of
// non-blocking I/O (what it moved, or what to wait for) and waiting for the
// socket with a deadline. Internal to the client library.
#pragma once

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <string>

#include "client/result.hpp"

namespace glockd::client {

using Clock = std::chrono::steady_clock;

// What one attempt to send or receive did.
struct Step {
  enum Kind {
    Moved,      // `n` bytes went (n may be 0 for TLS: call again)
    End,        // the peer closed the connection (FIN, or TLS close_notify)
    WantRead,   // nothing can move until the socket is readable
    WantWrite,  // ... until it is writable
    Failed,     // the link failed: `why`; `code` Io or Closed
  } kind;
  std::size_t n = 0;
  std::string why = {};
  Errc code = Errc::Io;
};

// Rounded up, so that a poll() for this long does not end before the
// deadline; capped for poll()'s int (the caller polls again).
inline int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1
// poll failed (errno). A deadline beyond the cap (a `w` of kMaxWaitMs is 24
// days) takes several polls.
inline int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0 || (n == 0 && Clock::now() >= deadline)) return n;
    if (n < 0 && errno != EINTR) return -1;
  }
}

// What a Step says to wait for.
inline short events_for(const Step& s) { return s.kind == Step::WantWrite ? POLLOUT : POLLIN; }

}  // namespace glockd::client

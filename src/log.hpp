// Logging helpers: spdlog setup and a rate limiter so refused input is
// logged once per interval, not once per event.
#pragma once

#include <chrono>
#include <cstdint>

namespace glockd {

// Sets the pattern (no timestamps under journald) and level.
void setup_logging(bool verbose);

class RateLimit {
 public:
  explicit RateLimit(std::chrono::seconds interval = std::chrono::seconds(10))
      : interval_(interval) {}
  // True when this event should be logged; `suppressed` then holds how many
  // events were swallowed since the last logged one.
  bool allow(std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < interval_) {
      ++suppressed_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
  bool logged_once_ = false;
};

}  // namespace glockd

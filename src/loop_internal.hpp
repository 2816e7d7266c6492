// Constants and helpers shared by the loop's source files (loop*.cpp).
#pragma once

#include <time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace glockd::loop_detail {

// Answers waiting beyond this throttle the connection until the peer
// catches up (reading resumes at half).
constexpr std::size_t kMaxUnsentOutput = 4 * 1024 * 1024;
// Requests queued behind a blocked `w` beyond this close the connection
// (reading never stops behind a wait: see Loop::refuse_queued_input).
constexpr std::size_t kMaxPendingInput = 1024 * 1024;
// How long a shutdown waits for cancelled operations to complete.
constexpr std::chrono::milliseconds kShutdownGrace{1000};
constexpr std::size_t kFdReserve = 32;  // descriptors kept for ourselves

inline std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t after_ms(std::int64_t ms) { return now_ns() + ms * 1'000'000; }

}  // namespace glockd::loop_detail

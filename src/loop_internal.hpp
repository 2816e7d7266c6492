// Constants and helpers shared by the loop's source files (loop*.cpp).
#pragma once

#include <time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace glockd::loop_detail {

constexpr unsigned kSqEntries = 4096;
// Large enough that a burst of accepts and recvs never overflows it.
constexpr unsigned kCqEntries = 65536;
constexpr unsigned kBufCount = 1024;     // power of two (buffer ring)
constexpr unsigned kBufSize = 4096;
constexpr std::uint16_t kBufGroup = 0;
constexpr unsigned kBatch = 256;         // CQEs taken per peek
// Answers waiting beyond this pause reading until the peer catches up.
constexpr std::size_t kMaxUnsentOutput = 4 * 1024 * 1024;
// Requests queued behind a blocked `w` beyond this close the connection
// (reading never pauses behind a wait: see Loop::refuse_queued_input).
constexpr std::size_t kMaxPendingInput = 1024 * 1024;

inline std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
// How long a shutdown waits for cancelled operations to complete.
constexpr std::chrono::milliseconds kShutdownGrace{1000};
constexpr std::uint32_t kNoSlot = 0xffffffffu;
constexpr std::size_t kFdReserve = 32;   // descriptors kept for ourselves

}  // namespace glockd::loop_detail

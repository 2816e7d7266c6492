// Constants and helpers shared by the loop's source files (loop*.cpp).
#pragma once

#include <time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace glockd::loop_detail {

// Fair turns: a connection has at most this many requests served per turn
// of the loop (the rest wait for the next turn, in order) ...
constexpr std::uint32_t kTurnRequests = 64;
// ... and a phase of a turn (the completions; the backlog) stops serving
// after this long, so signals, timers and new clients are seen within a
// few milliseconds whatever the load. The clock is read every
// kClockEvery requests.
constexpr std::chrono::microseconds kTurnSlice{2000};
constexpr std::uint32_t kClockEvery = 64;
// TLS handshakes (an RSA-2048 signature costs about 0.4 ms) stop for a
// turn once they have taken this long in it; the rest continue next turn,
// in order, so a burst of them cannot hold other clients' answers up.
constexpr std::chrono::microseconds kHandshakeSlice{1000};
// A connection with more than this of requests not yet served stops being
// read until it is down to half (Loop::read_ahead_): the recv buffers are
// shared, and a flood that is served 64 requests a turn must not take them
// all from a client that sends one.
constexpr std::size_t kReadAhead = 32 * 1024;
// At the memory budget, connections buffering more than their share stop
// being read (and served, when that much is unsent answers) until memory
// frees: the budget over 8x the open connections, within these bounds
// (Loop::pause_floor), so many connections cannot each stay just under it.
constexpr std::size_t kPauseFloorMin = 4 * 1024;
constexpr std::size_t kPauseFloorMax = 64 * 1024;
// An inspection made past the budget lets the next one be made once its
// answer has mostly gone to the kernel, or after this long at the latest
// (a peer that never reads must not hold every other inspection up).
constexpr std::chrono::seconds kInspectionTurn{10};
// Idle buffers larger than this go back to the allocator.
constexpr std::size_t kKeepBuffer = 64 * 1024;
// malloc_trim when the loop is idle, at most this often, once this much
// has been freed since the peak.
constexpr std::chrono::milliseconds kTrimInterval{1000};
constexpr std::size_t kTrimAfter = 8 * 1024 * 1024;
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

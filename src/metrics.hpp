// Metrics: the Prometheus text exposition of GET /metrics (docs/PROTOCOL.md
// section 4). Pure: the loop gathers the figures, this formats them.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "protocol.hpp"

namespace glockd {

struct MetricsInput {
  const Stats* stats = nullptr;
  std::size_t connections = 0;                 // as q reports it
  std::array<std::size_t, 3> by_transport{};   // tcp, unix, ws
  std::uint64_t accepted_total = 0;
  std::size_t locks = 0;
  std::size_t shared_locks = 0;
  std::size_t waiters = 0;
  std::size_t detached_sessions = 0;
  std::size_t sessions_reserved = 0;           // grace > 0, open or kept
  std::size_t max_sessions = 0;
  std::size_t paused_connections = 0;          // reading paused, hangup watched
  std::size_t unsent_bytes = 0;                // answers made, not yet taken by the kernel
  std::size_t queued_bytes = 0;                // requests read, not yet handled
  std::uint64_t queue_overflows = 0;
  std::size_t draining_connections = 0;        // closed, still sending their last answers
  std::uint64_t drain_timeouts = 0;           // closed: too much queued behind a wait
  std::uint64_t token_mark = 0;                // --state-dir high-water mark; 0: none
  std::size_t lock_table_bytes = 0;
  // Isolation: the memory budget and fair turns.
  std::size_t memory_budget = 0;               // --max-memory
  std::size_t memory_used = 0;                 // lock table + buffered
  std::size_t memory_buffered = 0;             // connections' buffers
  std::size_t memory_waiting = 0;              // connections paused or waiting for memory
  std::uint64_t memory_pauses = 0;
  std::uint64_t input_pauses = 0;
  std::uint64_t output_pauses = 0;
  std::uint64_t turn_deferrals = 0;
  std::uint64_t ws_message_timeouts = 0;
  // TLS (only rendered when a port speaks it).
  bool tls = false;
  std::size_t tls_connections = 0;
  std::size_t tls_memory = 0;                  // OpenSSL's allocations
  std::uint64_t tls_handshakes = 0;
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t tls_handshake_timeouts = 0;
  std::uint64_t tls_handshake_deferrals = 0;
  std::uint64_t tls_memory_refusals = 0;
  std::uint64_t tls_reloads = 0;
  std::uint64_t tls_reload_failures = 0;
  std::int64_t tls_certificate_expiry = 0;     // unix time
  std::uint64_t malloc_trims = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  double uptime_seconds = 0;
};

std::string render_metrics(const MetricsInput& in);

}  // namespace glockd

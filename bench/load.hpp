// Closed-loop load: T threads, each an epoll loop over its share of the
// connections, each connection keeping `depth` requests in flight. The
// orchestrator measures a window: requests completed, latency, and the
// server's CPU time over exactly that window.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "stats.hpp"
#include "workload.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, for those who do not include it

namespace bench {

struct LoadOptions {
  Target target;
  Workload workload = Workload::GetRelease;
  Proto proto = Proto::Line;
  unsigned connections = 50;
  unsigned depth = 1;
  unsigned threads = 1;
  double warmup_s = 1.0;
  double duration_s = 5.0;
  std::uint64_t requests = 0;  // > 0: run this many requests instead of a duration
  unsigned keys = 16;          // shared keys of contend / wait
  unsigned wait_ms = 100;      // MS of `w MS key`
  unsigned open_window = 128;  // connections being opened at once (per run)
  double drain_s = 2.0;        // how long answers still in flight are awaited at the end
                               // (for `wait`, at least depth x MS + 1 s)
  double open_timeout_s = 30.0;
  pid_t server_pid = 0;        // 0: no server CPU figure
  ssl_ctx_st* tls = nullptr;   // not null: every connection speaks TLS (tls.hpp)
};

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

// Written by one worker, read by the orchestrator during the run.
struct alignas(64) Progress {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> settled{0};  // connections opened or failed
  std::atomic<bool> finished{false};
};

// Read by the orchestrator once the worker has ended.
struct WorkerResult {
  Histogram latency;  // replies of the measured window
  std::uint64_t ok = 0, errors = 0;
  std::uint64_t fail = 0;          // "0 ..." answers to takes (g, w, sg, SET NX, i)
  std::uint64_t fail_release = 0;  // "0 ..." answers to releases (r, sr, DEL)
  std::uint64_t opened = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t disconnects = 0;     // connections the server closed or reset
  std::uint64_t unanswered = 0;      // requests still unanswered at the end
  std::uint64_t protocol_errors = 0; // unparseable or unexpected replies
  std::uint64_t max_gap_ns = 0;      // longest time without any reply (window)
  std::uint64_t stalls = 0;          // gaps over 50 ms
  std::uint64_t tls_failures = 0;    // handshakes or reads that failed with a TLS error
};

// Runs one worker's share: connections [first, first + count).
void run_worker(const LoadOptions& o, unsigned first, unsigned count, std::uint64_t budget,
                const std::atomic<int>& phase, Progress& progress, WorkerResult& result);

// The whole load run; prints the human summary and the RESULT line.
int run_load(const LoadOptions& o);

}  // namespace bench

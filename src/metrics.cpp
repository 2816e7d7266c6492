// Prometheus text format (version 0.0.4): HELP and TYPE per family.
#include "metrics.hpp"

#include <fmt/format.h>

namespace glockd {

namespace {
void family(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
template <class T>
void sample(std::string& out, const char* name, T value) {
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}
}  // namespace

std::string render_metrics(const MetricsInput& in) {
  std::string out;
  out.reserve(4096);
  family(out, "glockd_requests_total", "counter", "Requests received, by command.");
  for (std::size_t i = 0; i < kCommandCount; ++i)
    fmt::format_to(std::back_inserter(out), "glockd_requests_total{{command=\"{}\"}} {}\n",
                   command_name(static_cast<Command>(i)), in.stats->commands[i]);
  family(out, "glockd_invalid_commands_total", "counter",
         "Unknown commands and overlong lines (q: invalid_commands).");
  sample(out, "glockd_invalid_commands_total", in.stats->invalid_commands);
  family(out, "glockd_connections", "gauge", "Connections open now (q: connections).");
  sample(out, "glockd_connections", in.connections);
  family(out, "glockd_transport_connections", "gauge", "Connections open now, by transport.");
  static constexpr const char* kTransports[] = {"tcp", "unix", "ws"};
  for (std::size_t t = 0; t < in.by_transport.size(); ++t)
    fmt::format_to(std::back_inserter(out), "glockd_transport_connections{{transport=\"{}\"}} {}\n",
                   kTransports[t], in.by_transport[t]);
  family(out, "glockd_connections_accepted_total", "counter", "Connections accepted since start.");
  sample(out, "glockd_connections_accepted_total", in.accepted_total);
  family(out, "glockd_locks", "gauge", "Exclusive locks held now (q: locks).");
  sample(out, "glockd_locks", in.locks);
  family(out, "glockd_shared_locks", "gauge", "Shared lock names held now (q: shared_locks).");
  sample(out, "glockd_shared_locks", in.shared_locks);
  family(out, "glockd_orphans_total", "counter",
         "Exclusive locks released by disconnection (q: orphans).");
  sample(out, "glockd_orphans_total", in.stats->orphans);
  family(out, "glockd_shared_orphans_total", "counter",
         "Shared locks released by disconnection (q: shared_orphans).");
  sample(out, "glockd_shared_orphans_total", in.stats->shared_orphans);
  family(out, "glockd_waiters", "gauge", "Queued w and sw requests.");
  sample(out, "glockd_waiters", in.waiters);
  family(out, "glockd_detached_sessions", "gauge",
         "Dropped connections whose locks are kept for their grace period.");
  sample(out, "glockd_detached_sessions", in.detached_sessions);
  family(out, "glockd_sessions", "gauge",
         "Sessions holding a slot under --max-sessions: connections with grace > 0, open or "
         "dropped and kept.");
  sample(out, "glockd_sessions", in.sessions_reserved);
  family(out, "glockd_sessions_max", "gauge", "The bound on kept sessions (--max-sessions).");
  sample(out, "glockd_sessions_max", in.max_sessions);
  family(out, "glockd_sessions_refused_total", "counter",
         "grace requests refused because --max-sessions was reached.");
  sample(out, "glockd_sessions_refused_total", in.stats->sessions_refused);
  family(out, "glockd_session_token_failures_total", "counter",
         "session requests refused because the kernel gave no random bytes.");
  sample(out, "glockd_session_token_failures_total", in.stats->tokens_failed);
  family(out, "glockd_paused_connections", "gauge",
         "Connections whose reading is paused (over 4 MiB of answers unsent); each is still "
         "watched for hangup.");
  sample(out, "glockd_paused_connections", in.paused_connections);
  family(out, "glockd_unsent_bytes", "gauge",
         "Answers made but not yet taken by the kernel, all connections (at most 4 MiB and one "
         "answer each).");
  sample(out, "glockd_unsent_bytes", in.unsent_bytes);
  family(out, "glockd_queued_bytes", "gauge",
         "Requests read but not yet handled (behind a wait or unread answers), all connections.");
  sample(out, "glockd_queued_bytes", in.queued_bytes);
  family(out, "glockd_queue_overflows_total", "counter",
         "Connections closed for queueing more than 1 MiB (or one websocket message) of requests "
         "behind a blocked wait.");
  sample(out, "glockd_queue_overflows_total", in.queue_overflows);
  family(out, "glockd_draining_connections", "gauge",
         "Closed connections still sending their last answers (bounded by --drain-timeout).");
  sample(out, "glockd_draining_connections", in.draining_connections);
  family(out, "glockd_drain_timeouts_total", "counter",
         "Closing connections whose last answers were dropped after --drain-timeout.");
  sample(out, "glockd_drain_timeouts_total", in.drain_timeouts);
  if (in.token_mark != 0) {
    family(out, "glockd_fencing_token_mark", "gauge",
           "Fencing tokens reserved up to here in --state-dir; a restart starts above it.");
    sample(out, "glockd_fencing_token_mark", in.token_mark);
  }
  family(out, "glockd_lock_table_bytes", "gauge",
         "Memory held by the lock table: entries, holds, waiters, index, names.");
  sample(out, "glockd_lock_table_bytes", in.lock_table_bytes);
  family(out, "glockd_received_bytes_total", "counter", "Bytes received from clients.");
  sample(out, "glockd_received_bytes_total", in.bytes_received);
  family(out, "glockd_sent_bytes_total", "counter", "Bytes sent to clients.");
  sample(out, "glockd_sent_bytes_total", in.bytes_sent);
  family(out, "glockd_uptime_seconds", "gauge", "Seconds since glockd started.");
  fmt::format_to(std::back_inserter(out), "glockd_uptime_seconds {:.3f}\n", in.uptime_seconds);
  return out;
}

}  // namespace glockd

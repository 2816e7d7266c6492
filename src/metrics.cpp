// Prometheus text format (version 0.0.4): HELP and TYPE per family.
#include "metrics.hpp"

#include <fmt/format.h>

namespace glockd {

namespace {
void family(std::string& out, const char* name, const char* type, const char* help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}
// A family of one sample.
template <class T>
void metric(std::string& out, const char* name, const char* type, T value, const char* help) {
  family(out, name, type, help);
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
  metric(out, "glockd_invalid_commands_total", "counter", in.stats->invalid_commands,
         "Unknown commands and overlong lines (q: invalid_commands).");
  metric(out, "glockd_connections", "gauge", in.connections,
         "Connections open now (q: connections).");
  family(out, "glockd_transport_connections", "gauge", "Connections open now, by transport.");
  static constexpr const char* kTransports[] = {"tcp", "unix", "ws"};
  for (std::size_t t = 0; t < in.by_transport.size(); ++t)
    fmt::format_to(std::back_inserter(out), "glockd_transport_connections{{transport=\"{}\"}} {}\n",
                   kTransports[t], in.by_transport[t]);
  metric(out, "glockd_connections_accepted_total", "counter", in.accepted_total,
         "Connections accepted since start.");
  metric(out, "glockd_locks", "gauge", in.locks, "Exclusive locks held now (q: locks).");
  metric(out, "glockd_shared_locks", "gauge", in.shared_locks,
         "Shared lock names held now (q: shared_locks).");
  metric(out, "glockd_orphans_total", "counter", in.stats->orphans,
         "Exclusive locks released by disconnection (q: orphans).");
  metric(out, "glockd_shared_orphans_total", "counter", in.stats->shared_orphans,
         "Shared locks released by disconnection (q: shared_orphans).");
  metric(out, "glockd_waiters", "gauge", in.waiters, "Queued w and sw requests.");
  metric(out, "glockd_detached_sessions", "gauge", in.detached_sessions,
         "Dropped connections whose locks are kept for their grace period.");
  metric(out, "glockd_sessions", "gauge", in.sessions_reserved,
         "Sessions holding a slot under --max-sessions: connections with grace > 0, open or "
         "dropped and kept.");
  metric(out, "glockd_sessions_max", "gauge", in.max_sessions,
         "The bound on kept sessions (--max-sessions).");
  metric(out, "glockd_sessions_refused_total", "counter", in.stats->sessions_refused,
         "grace requests refused because --max-sessions was reached.");
  metric(out, "glockd_session_token_failures_total", "counter", in.stats->tokens_failed,
         "session requests refused because the kernel gave no random bytes.");
  metric(out, "glockd_paused_connections", "gauge", in.paused_connections,
         "Connections whose reading is paused (answers or requests over their bound, or the "
         "memory budget reached); each is still watched for hangup.");
  metric(out, "glockd_unsent_bytes", "gauge", in.unsent_bytes,
         "Answers made but not yet taken by the kernel, all connections (at most "
         "--max-output-per-connection and one answer each).");
  metric(out, "glockd_queued_bytes", "gauge", in.queued_bytes,
         "Requests read but not yet handled (behind a wait or unread answers), all connections.");
  metric(out, "glockd_queue_overflows_total", "counter", in.queue_overflows,
         "Connections closed for queueing more than 1 MiB (or one websocket message) of "
         "requests behind a blocked wait.");
  metric(out, "glockd_draining_connections", "gauge", in.draining_connections,
         "Closed connections still sending their last answers (bounded by --drain-timeout).");
  metric(out, "glockd_drain_timeouts_total", "counter", in.drain_timeouts,
         "Closing connections whose last answers were dropped after --drain-timeout.");
  if (in.token_mark != 0)
    metric(out, "glockd_fencing_token_mark", "gauge", in.token_mark,
           "Fencing tokens reserved up to here in --state-dir; a restart starts above it.");
  metric(out, "glockd_lock_table_bytes", "gauge", in.lock_table_bytes,
         "Memory held by the lock table: entries, holds, waiters, index, names.");
  metric(out, "glockd_memory_budget_bytes", "gauge", in.memory_budget,
         "What clients may make the daemon hold in total (--max-memory).");
  metric(out, "glockd_memory_used_bytes", "gauge", in.memory_used,
         "What clients make the daemon hold now: the lock table and every connection's "
         "buffers.");
  metric(out, "glockd_memory_buffered_bytes", "gauge", in.memory_buffered,
         "Connections' buffers: queued requests, unsent answers, partial lines and websocket "
         "messages (allocated sizes).");
  metric(out, "glockd_memory_refusals_total", "counter", in.stats->memory_refusals,
         "Requests refused at the memory budget (g, w, sg, sw, iam, grace, session).");
  metric(out, "glockd_waiter_refusals_total", "counter", in.stats->waiter_refusals,
         "w and sw answered at once because --max-waiters or --max-waiters-per-lock was reached.");
  metric(out, "glockd_lock_limit_refusals_total", "counter", in.stats->lock_limit_refusals,
         "Lock requests refused past --max-locks-per-connection.");
  metric(out, "glockd_memory_waiting_connections", "gauge", in.memory_waiting,
         "Connections paused, or with an inspection waiting, until memory frees.");
  metric(out, "glockd_memory_pauses_total", "counter", in.memory_pauses,
         "Times reading from a connection paused because the memory budget was reached.");
  metric(out, "glockd_input_pauses_total", "counter", in.input_pauses,
         "Times reading from a connection paused over --max-input-per-connection.");
  metric(out, "glockd_output_pauses_total", "counter", in.output_pauses,
         "Times a connection paused over --max-output-per-connection of unread answers.");
  metric(out, "glockd_turn_deferrals_total", "counter", in.turn_deferrals,
         "Times a connection's requests waited for a later turn of the loop (fair turns).");
  metric(out, "glockd_ws_message_timeouts_total", "counter", in.ws_message_timeouts,
         "Websocket connections closed for not finishing a message (--ws-message-timeout).");
  if (in.tls) {
    metric(out, "glockd_tls_connections", "gauge", in.tls_connections,
           "Open TLS connections (also counted in glockd_connections).");
    metric(out, "glockd_tls_memory_bytes", "gauge", in.tls_memory,
           "Memory OpenSSL holds: the loaded certificates and CAs, and every TLS connection's "
           "state (counted in glockd_memory_used_bytes).");
    metric(out, "glockd_tls_handshakes_total", "counter", in.tls_handshakes,
           "TLS handshakes completed.");
    metric(out, "glockd_tls_handshake_failures_total", "counter", in.tls_handshake_failures,
           "TLS handshakes that failed (no or a refused client certificate, not TLS, ...).");
    metric(out, "glockd_tls_handshake_timeouts_total", "counter", in.tls_handshake_timeouts,
           "TLS connections dropped for not finishing the handshake in "
           "--ssl-handshake-timeout.");
    metric(out, "glockd_tls_handshake_deferrals_total", "counter", in.tls_handshake_deferrals,
           "TLS handshakes that waited for a later turn of the loop (handshake CPU is bounded "
           "per turn).");
    metric(out, "glockd_tls_memory_refusals_total", "counter", in.tls_memory_refusals,
           "TLS connections refused because the memory budget (--max-memory) was full.");
    metric(out, "glockd_tls_reloads_total", "counter", in.tls_reloads,
           "Certificate reloads (SIGHUP) that took effect.");
    metric(out, "glockd_tls_reload_failures_total", "counter", in.tls_reload_failures,
           "Certificate reloads (SIGHUP) refused: the certificates loaded before stay.");
    metric(out, "glockd_tls_certificate_expiry_timestamp_seconds", "gauge",
           in.tls_certificate_expiry, "When the server certificate (--ssl-cert) expires, unix time.");
  }
  metric(out, "glockd_malloc_trims_total", "counter", in.malloc_trims,
         "Times freed memory was given back to the kernel after a burst.");
  metric(out, "glockd_received_bytes_total", "counter", in.bytes_received,
         "Bytes received from clients.");
  metric(out, "glockd_sent_bytes_total", "counter", in.bytes_sent, "Bytes sent to clients.");
  family(out, "glockd_uptime_seconds", "gauge", "Seconds since glockd started.");
  fmt::format_to(std::back_inserter(out), "glockd_uptime_seconds {:.3f}\n", in.uptime_seconds);
  return out;
}

}  // namespace glockd

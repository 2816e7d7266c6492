// The HTTP endpoints of the websocket port (/metrics, /healthz): requests
// that are not a websocket upgrade (WebSocketFraming) are answered here.
#include <spdlog/spdlog.h>

#include "loop.hpp"
#include "loop_internal.hpp"
#include "metrics.hpp"

namespace glockd {

using namespace loop_detail;

namespace {
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
}  // namespace

std::string Loop::http_response(const http::Request& request) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const bool head = request.method() == "HEAD";
  if (request.method() != "GET" && !head)
    return http::response(405, "Method Not Allowed", "text/plain", "only GET is served here\n",
                          "Allow: GET, HEAD\r\n");
  std::string response;
  if (path == "/metrics")
    response = http::response(200, "OK", kMetricsType, metrics_text());
  else if (path == "/healthz")
    response = http::response(200, "OK", "text/plain", "ok\n");
  else
    response = http::response(404, "Not Found", "text/plain",
                              "not found: try /metrics, /healthz or a websocket upgrade\n");
  if (head) response.resize(response.find("\r\n\r\n") + 4);  // same head, no body
  return response;
}

std::string Loop::metrics_text() {
  MetricsInput in;
  in.stats = &stats_;
  take_pending_accepts();
  in.connections = open_;
  for (int t = 0; t < kTransportCount; ++t) in.by_transport[t] = open_by_transport_[t];
  in.accepted_total = accepted_;
  in.locks = table_.exclusive_locks();
  in.shared_locks = table_.shared_locks();
  in.waiters = table_.waiters();
  in.detached_sessions = kept_sessions_;
  in.sessions_reserved = protocol_->sessions_reserved();
  in.max_sessions = max_sessions_;
  for (std::size_t i = 0; i < conns_.slots(); ++i) {
    const Connection& c = conns_.at(static_cast<ConnId>(i));
    if (c.state() == Connection::State::Throttled) ++in.paused_connections;
    in.unsent_bytes += c.unsent();
    in.queued_bytes += c.pending_input.size();
    if (c.state() == Connection::State::Draining) ++in.draining_connections;
  }
  in.token_mark = token_mark_ != nullptr ? token_mark_->mark() : 0;
  in.queue_overflows = queue_overflows_;
  in.drain_timeouts = drain_timeouts_;
  in.lock_table_bytes = table_.memory_bytes();
  in.memory_budget = budget_.limit();
  in.memory_used = budget_.used();
  in.memory_buffered = budget_.buffered();
  in.memory_waiting = memory_held_.size();
  in.memory_pauses = memory_pauses_;
  in.input_pauses = input_pauses_;
  in.output_pauses = output_pauses_;
  in.turn_deferrals = deferred_;
  in.ws_message_timeouts = ws_message_timeouts_;
  in.malloc_trims = trims_;
  if (tls_.tcp || tls_.ws) {
    in.tls = true;
    in.tls_connections = open_tls_;
    in.tls_memory = tls::allocated();
    in.tls_handshakes = tls_handshakes_;
    in.tls_handshake_failures = tls_failures_;
    in.tls_handshake_timeouts = tls_timeouts_;
    in.tls_handshake_deferrals = tls_deferrals_;
    in.tls_memory_refusals = tls_memory_refusals_;
    in.tls_reloads = tls_reloads_;
    in.tls_reload_failures = tls_reload_failures_;
    in.tls_certificate_expiry = (tls_.tcp ? *tls_.tcp : *tls_.ws).not_after();
  }
  in.bytes_received = bytes_in_;
  in.bytes_sent = bytes_out_;
  in.uptime_seconds = static_cast<double>(now_ns() - started_ns_) / 1e9;
  return render_metrics(in);
}

}  // namespace glockd

// The websocket/HTTP port: an HTTP/1.1 request head first, then either an
// RFC 6455 upgrade (requests in messages, one text message per answer) or
// one of the HTTP endpoints (/metrics, /healthz) and close.
#include <spdlog/spdlog.h>

#include "loop.hpp"
#include "loop_internal.hpp"
#include "metrics.hpp"
#include "websocket.hpp"

namespace glockd {

using namespace loop_detail;

namespace {
constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
}  // namespace

void Loop::consume_ws(Connection& c, std::string_view bytes) {
  WebSocketState& w = *c.ws;
  if (w.phase == WebSocketState::Phase::Http) {
    const http::RequestParser::Result r = w.parser.feed(bytes);
    if (r.status == http::RequestParser::Status::NeedMore) return;
    timers_.erase({c.deadline_ns, c.session.id});
    if (r.status == http::RequestParser::Status::Error) {
      const std::string_view reason = http::reason_phrase(r.error_status);
      warn_limited(http_limit_, c.addr + " sent a malformed HTTP request: " +
                                    std::to_string(r.error_status) + " " + std::string(reason));
      return http_reply(c,
                        http::response(r.error_status, reason, "text/plain",
                                       std::string(reason) + "\n"),
                        "malformed HTTP request");
    }
    const ws::UpgradeDecision d = ws::check_upgrade(w.parser.request(), config_.ws_origins);
    switch (d.kind) {
      case ws::UpgradeDecision::Kind::PlainHttp:
        return route_http(c, w.parser.request());
      case ws::UpgradeDecision::Kind::Reject:
        if (d.status == 403) {
          const auto origin = w.parser.request().header("origin");
          warn_limited(origin_limit_, c.addr + ": refused a websocket from Origin " +
                                          std::string(origin.value_or("?")) +
                                          " (not in --ws-origin)");
        }
        return http_reply(c, d.response, "websocket upgrade refused");
      case ws::UpgradeDecision::Kind::Upgrade:
        break;
    }
    c.out.append(d.response);
    w.phase = WebSocketState::Phase::WebSocket;
    w.parser.reset();
    if (config_.verbose) spdlog::debug("{} upgraded to websocket", c.addr);
    bytes.remove_prefix(r.consumed);  // a client may send frames right away
    if (bytes.empty()) return;
  }
  if (w.phase != WebSocketState::Phase::WebSocket) return;

  w.events.clear();
  const ws::Decoder::Result res = w.decoder.feed(bytes, w.events);
  for (ws::Event& e : w.events) {
    switch (e.kind) {
      case ws::Event::Kind::Text:
      case ws::Event::Kind::Binary:
        on_ws_message(c, e.payload);
        break;
      case ws::Event::Kind::Ping:
        ws::encode(c.out, ws::Opcode::Pong, e.payload);
        break;
      case ws::Event::Kind::Pong:
        break;
      case ws::Event::Kind::Close:
        ws::encode_close(c.out, e.code);  // echo the peer's code
        break;
    }
    if (c.state != ConnState::Open) return;
  }
  if (res.status == ws::Decoder::Status::Closed) {
    w.phase = WebSocketState::Phase::Done;
    terminate(c, "websocket closed", true);
  } else if (res.status == ws::Decoder::Status::Failed) {
    warn_limited(http_limit_, c.addr + ": websocket protocol error, closing with " +
                                  std::to_string(res.code) + ": " + std::string(res.reason));
    ws::encode_close(c.out, res.code, res.reason);
    w.phase = WebSocketState::Phase::Done;
    terminate(c, "websocket protocol error", true);
  }
}

void Loop::on_ws_message(Connection& c, std::string_view payload) {
  // The message's end ends its last request (PROTOCOL.md section 3).
  // Queued requests (see Loop::consume) go first.
  if (c.blocked || c.reading_paused || !c.pending_input.empty()) {
    c.pending_input.append(payload);
    c.pending_input.push_back('\n');
    return;
  }
  consume_lines(c, payload);
  // Stopped early (a wait, or answers over their bound): the rest is queued.
  if (c.blocked || !c.pending_input.empty()) c.pending_input.push_back('\n');
  else consume_lines(c, "\n");
}

void Loop::route_http(Connection& c, const http::Request& request) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const bool head = request.method() == "HEAD";
  if (request.method() != "GET" && !head)
    return http_reply(c,
                      http::response(405, "Method Not Allowed", "text/plain",
                                     "only GET is served here\n", "Allow: GET, HEAD\r\n"),
                      "http 405");
  std::string response;
  if (path == "/metrics")
    response = http::response(200, "OK", kMetricsType, metrics_text());
  else if (path == "/healthz")
    response = http::response(200, "OK", "text/plain", "ok\n");
  else
    response = http::response(404, "Not Found", "text/plain",
                              "not found: try /metrics, /healthz or a websocket upgrade\n");
  if (head) response.resize(response.find("\r\n\r\n") + 4);  // same head, no body
  http_reply(c, std::move(response), "http request answered");
}

void Loop::http_reply(Connection& c, std::string response, const char* why) {
  c.out.append(response);
  c.ws->phase = WebSocketState::Phase::Done;
  terminate(c, why, true);  // send the response, then close
}

void Loop::http_timeout(Connection& c) {
  warn_limited(http_limit_, c.addr + ": no complete HTTP request head within " +
                                std::to_string(config_.ws_handshake_timeout_seconds) +
                                " s (--ws-handshake-timeout); dropped");
  http_reply(c,
             http::response(408, "Request Timeout", "text/plain", "request head too slow\n"),
             "http request head timed out");
}

std::string Loop::metrics_text() {
  MetricsInput in;
  in.stats = &stats_;
  in.connections = connections_now();
  for (int t = 0; t < kTransportCount; ++t) in.by_transport[t] = open_by_transport_[t];
  in.accepted_total = accepted_;
  in.locks = table_.exclusive_locks();
  in.shared_locks = table_.shared_locks();
  in.waiters = table_.waiters();
  in.detached_sessions = detached_;
  in.sessions_reserved = protocol_->sessions_reserved();
  in.max_sessions = max_sessions_;
  for (std::size_t i = 0; i < conns_.slots(); ++i) {
    const Connection& c = conns_.at(static_cast<ConnId>(i));
    if (c.state == ConnState::Open && c.reading_paused) ++in.paused_connections;
    in.unsent_bytes += c.unsent();
    in.queued_bytes += c.pending_input.size();
    if (c.state == ConnState::Closing && c.flush_on_close) ++in.draining_connections;
  }
  in.token_mark = token_mark_ != nullptr ? token_mark_->mark() : 0;
  in.queue_overflows = queue_overflows_;
  in.drain_timeouts = drain_timeouts_;
  in.lock_table_bytes = table_.memory_bytes();
  in.bytes_received = bytes_in_;
  in.bytes_sent = bytes_out_;
  in.uptime_seconds = static_cast<double>(now_ns() - started_ns_) / 1e9;
  return render_metrics(in);
}

}  // namespace glockd

// WebSocketFraming: the HTTP request head, the upgrade (RFC 6455), then
// frames; one request message in, one text (or binary) message per answer.
#include "framing.hpp"

#include <algorithm>
#include <string>

namespace glockd {

void WebSocketFraming::feed(std::string_view bytes, std::string& out, FramingSink& sink) {
  if (phase_ == Phase::Http) feed_head(bytes, out, sink);
  if (phase_ == Phase::WebSocket && !bytes.empty()) feed_frames(bytes, out, sink);
}

void WebSocketFraming::feed_head(std::string_view& bytes, std::string& out, FramingSink& sink) {
  const http::RequestParser::Result r = parser_.feed(bytes);
  const std::string_view rest = bytes.substr(std::min(r.consumed, bytes.size()));
  bytes = {};
  if (r.status == http::RequestParser::Status::NeedMore) return;
  if (r.status == http::RequestParser::Status::Error) {
    const std::string_view reason = http::reason_phrase(r.error_status);
    sink.warn(FramingSink::Warning::Http, " sent a malformed HTTP request: " +
                                              std::to_string(r.error_status) + " " +
                                              std::string(reason));
    return answer_http(
        http::response(r.error_status, reason, "text/plain", std::string(reason) + "\n"), out,
        sink, "malformed HTTP request");
  }
  const ws::UpgradeDecision d = ws::check_upgrade(parser_.request(), *limits_.origins);
  switch (d.kind) {
    case ws::UpgradeDecision::Kind::PlainHttp:
      return answer_http(sink.http_request(parser_.request()), out, sink,
                         "http request answered");
    case ws::UpgradeDecision::Kind::Reject:
      if (d.status == 403) {
        const auto origin = parser_.request().header("origin");
        sink.warn(FramingSink::Warning::Origin, ": refused a websocket from Origin " +
                                                    std::string(origin.value_or("?")) +
                                                    " (not in --ws-origin)");
      }
      return answer_http(d.response, out, sink, "websocket upgrade refused");
    case ws::UpgradeDecision::Kind::Upgrade:
      break;
  }
  out.append(d.response);
  phase_ = Phase::WebSocket;
  sink.upgraded();
  parser_.reset();
  bytes = rest;  // a client may send frames right behind its request head
}

void WebSocketFraming::feed_frames(std::string_view bytes, std::string& out, FramingSink& sink) {
  events_.clear();
  const ws::Decoder::Result res = decoder_.feed(bytes, events_);
  for (ws::Event& e : events_) {
    switch (e.kind) {
      case ws::Event::Kind::Text:
      case ws::Event::Kind::Binary:
        // The message's end ends its last request (docs/PROTOCOL.md section 3).
        sink.requests(e.payload);
        sink.requests("\n");
        break;
      case ws::Event::Kind::Ping:
        ws::encode(out, ws::Opcode::Pong, e.payload);
        break;
      case ws::Event::Kind::Pong:
        break;
      case ws::Event::Kind::Close:
        sink.serve_queued();  // answers to its earlier messages go first
        ws::encode_close(out, e.code);  // echo the peer's code
        break;
    }
    if (phase_ != Phase::WebSocket) return;  // the sink ended the conversation
  }
  if (res.status == ws::Decoder::Status::Closed) {
    phase_ = Phase::Done;
    sink.finish("websocket closed");
  } else if (res.status == ws::Decoder::Status::Failed) {
    sink.warn(FramingSink::Warning::Http, ": websocket protocol error, closing with " +
                                              std::to_string(res.code) + ": " +
                                              std::string(res.reason));
    ws::encode_close(out, res.code, res.reason);
    phase_ = Phase::Done;
    sink.finish("websocket protocol error");
  }
}

void WebSocketFraming::wrap_answer(std::string& out) {
  // Lock and client names are opaque bytes; a text message must be UTF-8
  // (browsers fail the connection otherwise), so such answers go as binary.
  ws::encode(out, ws::valid_utf8(answer_) ? ws::Opcode::Text : ws::Opcode::Binary, answer_);
  answer_.clear();
}

void WebSocketFraming::end_for_policy(std::string& out, std::string_view why) {
  if (phase_ != Phase::WebSocket) return;
  ws::encode_close(out, ws::kClosePolicy, why);
  phase_ = Phase::Done;
}

void WebSocketFraming::deadline_passed(std::string& out, FramingSink& sink) {
  if (phase_ == Phase::WebSocket && decoder_.partial()) {
    // A message begun and not finished holds memory (up to --ws-max-message)
    // for as long as the client likes: bounded in time too, as a head is.
    sink.warn(FramingSink::Warning::SlowMessage,
              ": did not finish a websocket message within " +
                  std::to_string(limits_.message_timeout_seconds) +
                  " s (--ws-message-timeout); closing with 1008");
    ws::encode_close(out, ws::kClosePolicy, "message too slow");
    phase_ = Phase::Done;
    return sink.finish("websocket message timed out");
  }
  if (phase_ != Phase::Http) return;
  sink.warn(FramingSink::Warning::Http,
            ": no complete HTTP request head within " +
                std::to_string(limits_.head_timeout_seconds) + " s (--ws-handshake-timeout); dropped");
  answer_http(http::response(408, "Request Timeout", "text/plain", "request head too slow\n"),
              out, sink, "http request head timed out");
}

void WebSocketFraming::answer_http(std::string response, std::string& out, FramingSink& sink,
                                   const char* why) {
  out.append(response);
  phase_ = Phase::Done;
  sink.finish(why);  // send the response, then close
}

}  // namespace glockd

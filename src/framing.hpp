// Framing: the layer between the byte stream and the requests. Lines pass
// through as they are; the websocket port reads an HTTP request head, then
// frames (one request message in, one message per answer out). A new
// transport is a new Framing, with no change to the loop's request logic.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http.hpp"
#include "stream.hpp"
#include "websocket.hpp"

namespace glockd {

// Where a framing hands what it decoded.
class FramingSink {
 public:
  // Warnings a framing reports; the loop logs them rate limited, per kind.
  enum class Warning : std::uint8_t { Http, Origin, SlowMessage };
  virtual ~FramingSink() = default;
  // Request text, in order; a request ends at '\n'.
  virtual void requests(std::string_view text) = 0;
  // A plain HTTP request (not an upgrade): returns the whole response.
  virtual std::string http_request(const http::Request& request) = 0;
  // The peer is ending the conversation: serve the requests it sent before
  // (so their answers go before the framing's closing bytes).
  virtual void serve_queued() = 0;
  // The conversation is over: send what is in `out`, then close.
  virtual void finish(const char* why) = 0;
  // The HTTP connection became a websocket.
  virtual void upgraded() = 0;
  // `message` follows the peer's address in the log line.
  virtual void warn(Warning kind, std::string message) = 0;
};

class Framing {
 public:
  virtual ~Framing() = default;
  // Bytes from the stream. Replies of the framing's own (a pong, a close
  // frame, an HTTP error) are appended to `out`.
  virtual void feed(std::string_view bytes, std::string& out, FramingSink& sink) = 0;
  // The protocol writes one answer into answer_buffer(out); end_answer(out)
  // then frames it into `out`. Not virtual: a framing that does not wrap
  // answers (lines) costs nothing per answer.
  std::string& answer_buffer(std::string& out) { return transparent_ ? out : answer_; }
  void end_answer(std::string& out) {
    if (!answer_.empty()) wrap_answer(out);
  }
  // The server ends the conversation over a policy (after an answer saying
  // why): a websocket close frame, nothing for lines.
  virtual void end_for_policy(std::string& out, std::string_view why) = 0;
  // Seconds within which the framing's current unit must complete (an HTTP
  // request head), or 0 when it has no deadline now.
  virtual int deadline_seconds() const = 0;
  // That deadline passed.
  virtual void deadline_passed(std::string& out, FramingSink& sink) = 0;
  // Which unit the deadline is for: a new one (another message) gets a new
  // deadline. Only meaningful while deadline_seconds() > 0.
  virtual std::uint64_t unit() const { return 0; }
  // Bytes held for a unit not yet complete (a partial websocket message).
  virtual std::size_t buffered() const { return 0; }
  // The connection is closing: what is held for an unfinished unit can go.
  virtual void discard() {}
  // A transparent framing (lines) passes bytes and answers as they are: the
  // loop hands it no bytes (they are the requests), it is one object shared
  // by every connection, and it costs no call per request.
  bool transparent() const { return transparent_; }
  bool shared() const { return transparent_; }

 protected:
  explicit Framing(bool transparent) : transparent_(transparent) {}
  // Frames answer_ into `out` and empties answer_.
  virtual void wrap_answer(std::string& out) = 0;
  std::string answer_;  // one answer before it is framed

 private:
  bool transparent_;
};

// Lines: the TCP and unix ports. Stateless; requests are split into lines
// above this layer (Connection::reader), which also serves the websocket.
class LineFraming final : public Framing {
 public:
  static LineFraming& instance() {
    static LineFraming one;
    return one;
  }
  void feed(std::string_view bytes, std::string&, FramingSink& sink) override {
    sink.requests(bytes);
  }
  void end_for_policy(std::string&, std::string_view) override {}
  int deadline_seconds() const override { return 0; }
  void deadline_passed(std::string&, FramingSink&) override {}

 private:
  LineFraming() : Framing(true) {}
  void wrap_answer(std::string&) override {}  // never called: answers go to `out` as they are
};

// The websocket/HTTP port: an HTTP/1.1 request head first, then either an
// RFC 6455 upgrade or one HTTP answer (the loop's endpoints) and close.
class WebSocketFraming final : public Framing {
 public:
  struct Limits {
    std::size_t max_header;
    std::size_t max_message;
    int head_timeout_seconds;
    int message_timeout_seconds;  // a started message must end within this
    const std::vector<std::string>* origins;  // --ws-origin
  };
  explicit WebSocketFraming(const Limits& limits)
      : Framing(false), limits_(limits), parser_(limits.max_header), decoder_(limits.max_message) {}

  void feed(std::string_view bytes, std::string& out, FramingSink& sink) override;
  void end_for_policy(std::string& out, std::string_view why) override;
  int deadline_seconds() const override {
    if (phase_ == Phase::Http) return limits_.head_timeout_seconds;
    if (phase_ == Phase::WebSocket && decoder_.partial()) return limits_.message_timeout_seconds;
    return 0;
  }
  void deadline_passed(std::string& out, FramingSink& sink) override;
  std::uint64_t unit() const override { return decoder_.units(); }
  std::size_t buffered() const override { return decoder_.buffered(); }
  void discard() override { decoder_.discard(); }

 private:
  enum class Phase : std::uint8_t {
    Http,       // reading the request head (bounded in size and time)
    WebSocket,  // upgraded: frames in, one message per answer out
    Done,       // answered or closing: ignore further input
  };
  void feed_head(std::string_view& bytes, std::string& out, FramingSink& sink);
  void feed_frames(std::string_view bytes, std::string& out, FramingSink& sink);
  void answer_http(std::string response, std::string& out, FramingSink& sink, const char* why);
  void wrap_answer(std::string& out) override;

  Limits limits_;
  Phase phase_ = Phase::Http;
  http::RequestParser parser_;
  ws::Decoder decoder_;
  std::vector<ws::Event> events_;  // reused between reads
};

}  // namespace glockd

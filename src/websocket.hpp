// RFC 6455 server side: the opening handshake, the frame decoder for client
// frames and the encoder for server frames. Pure: no I/O, no clock, no logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http.hpp"

namespace glockd::ws {

inline constexpr std::size_t kDefaultMaxMessage = 1 << 20;  // --ws-max-message

// Close status codes this code sends (RFC 6455 section 7.4.1).
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseNoStatus = 1005;  // never on the wire
inline constexpr std::uint16_t kCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kClosePolicy = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;

enum class Opcode : std::uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// ---- Opening handshake ----------------------------------------------------

// base64(SHA-1(client_key + RFC 6455 GUID)).
std::string accept_key(std::string_view client_key);

struct UpgradeDecision {
  enum class Kind : std::uint8_t {
    Upgrade,    // send `response` (the 101), then speak websocket
    PlainHttp,  // not an upgrade attempt: route it (/metrics, /healthz, 404)
    Reject,     // send `response` and close
  };
  Kind kind;
  int status;            // 101, 0 for PlainHttp, or 400/403/426
  std::string response;  // bytes to send; empty for PlainHttp
};

// Decides what to do with a complete request head. A request is an upgrade
// attempt when its Upgrade header lists the token "websocket"; anything else
// (including `Upgrade: h2c`) is PlainHttp and its Upgrade header is ignored,
// as RFC 9110 allows. For an attempt:
// - GET on HTTP/1.1, `Connection` listing `upgrade`, exactly one
//   Sec-WebSocket-Key decoding to 16 bytes: else 400;
// - exactly one `Sec-WebSocket-Version: 13`: else 426 advertising 13;
// - every Origin header must be in `allowed_origins` (ASCII case-insensitive;
//   an empty list allows all; no Origin header, as from non-browser
//   clients, is allowed): else 403.
// Neither subprotocols nor extensions are negotiated, so the 101 carries
// neither header and client frames must leave the RSV bits clear.
UpgradeDecision check_upgrade(const http::Request& req,
                              std::span<const std::string> allowed_origins);

// ---- Client frames --------------------------------------------------------

struct Event {
  enum class Kind : std::uint8_t { Text, Binary, Ping, Pong, Close };
  Kind kind;
  std::uint16_t code = 0;  // Close only: the code received, kCloseNoStatus if none
  std::string payload;     // the message, the ping/pong payload, or the close reason
};

// Turns client bytes into events. Feed each received chunk as it arrives: a
// frame may span any number of chunks and a chunk may hold many frames.
// Memory held between calls is bounded by max_message plus a frame header
// (the partial message) and 125 bytes (a partial control frame).
class Decoder {
 public:
  enum class Status : std::uint8_t {
    Open,    // keep reading
    Closed,  // a close frame arrived (the last event is Close): answer it
    Failed,  // protocol violation: send close(code, reason) and close
  };
  struct Result {
    Status status;
    std::uint16_t code;       // Failed: 1002, 1007 or 1009; else 0
    std::string_view reason;  // Failed: a short static text for the close frame / log
  };

  explicit Decoder(std::size_t max_message = kDefaultMaxMessage);

  // Appends the events completed by `bytes` to `out`, in wire order (a
  // control frame sent between two fragments comes before the message).
  // Events appended before a failure are valid. Once Closed or Failed, the
  // decoder ignores further input and keeps returning the same result.
  Result feed(std::string_view bytes, std::vector<Event>& out);

  // A frame or a fragmented message has begun and not ended.
  bool partial() const { return stage_ == Stage::Payload || hdr_len_ > 0 || in_message_; }
  // Messages and control frames (outside a message) completed so far: the
  // one in progress is a new unit with its own deadline.
  std::uint64_t units() const { return units_; }
  // Bytes held for the message and control frame in progress.
  std::size_t buffered() const { return message_.capacity() + control_.capacity(); }
  // Nothing more will be read: let go of the message in progress.
  void discard() {
    std::string().swap(message_);
    std::string().swap(control_);
  }

 private:
  enum class Stage : std::uint8_t { Header, Payload };

  bool fail(std::uint16_t code, std::string_view reason);  // always false
  Result result() const { return {status_, fail_code_, fail_reason_}; }
  bool parse_header();  // false: failed (status_ set)
  bool finish_frame(std::vector<Event>& out);
  std::size_t take_payload(std::string_view bytes);

  std::size_t max_message_;
  Status status_ = Status::Open;
  std::uint16_t fail_code_ = 0;
  std::string_view fail_reason_;

  Stage stage_ = Stage::Header;
  std::uint8_t hdr_[14] = {};
  std::size_t hdr_len_ = 0;
  std::size_t hdr_need_ = 2;

  // Frame being received.
  bool fin_ = false;
  Opcode opcode_ = Opcode::Continuation;
  std::uint8_t mask_[4] = {};
  std::uint64_t frame_left_ = 0;  // payload bytes still to come
  std::size_t mask_pos_ = 0;      // payload bytes already unmasked, mod 4

  // Message being reassembled (data frames) and control payload.
  std::uint64_t units_ = 0;
  bool in_message_ = false;
  bool message_is_text_ = false;
  std::string message_;
  std::string control_;

  // Incremental UTF-8 check of a text message, so bad text fails fast.
  std::uint8_t utf8_need_ = 0;  // continuation bytes still expected
  std::uint8_t utf8_lo_ = 0x80, utf8_hi_ = 0xBF;  // range of the next one
};

// True when `code` may appear in a close frame (RFC 6455 section 7.4 and
// the IANA registry): 1000-1003, 1007-1014, 3000-4999.
bool valid_close_code(std::uint16_t code);

// Whole-buffer UTF-8 check: no overlongs, surrogates or code points above
// U+10FFFF.
bool valid_utf8(std::string_view s);

// ---- Server frames --------------------------------------------------------

// Appends one unmasked frame with FIN set. Control frames are limited to 125
// payload bytes by the RFC; a longer control payload is a caller bug and is
// truncated (asserted in debug builds).
void encode(std::string& out, Opcode op, std::string_view payload);

// Appends a close frame. kCloseNoStatus (1005) must not be sent on the wire,
// so it yields an empty close payload (the answer to an empty client close).
// The reason is cut at a UTF-8 boundary to fit in 123 bytes.
void encode_close(std::string& out, std::uint16_t code, std::string_view reason = {});

}  // namespace glockd::ws

// RFC 6455 server side: opening handshake, client frame decoder, server frame
// encoder. Every protocol violation maps to the close code the RFC assigns.
#include "websocket.hpp"

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace glockd::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::size_t kMaxControlPayload = 125;

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

// RFC 6455 section 4.1: the key is a base64-encoded 16-byte nonce, i.e. 22
// alphabet characters and "==". The shape check comes first because nettle
// quietly skips whitespace, which we do not want to accept.
bool valid_client_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  if (!std::all_of(key.begin(), key.begin() + 22, is_base64_char)) return false;
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  std::uint8_t raw[BASE64_DECODE_LENGTH(24)];
  std::size_t len = sizeof raw;
  if (base64_decode_update(&ctx, &len, raw, key.size(), key.data()) == 0) return false;
  return base64_decode_final(&ctx) == 1 && len == 16;
}

UpgradeDecision reject(int status, std::string_view body, std::string_view extra = {}) {
  return {UpgradeDecision::Kind::Reject, status,
          http::response(status, http::reason_phrase(status), "text/plain", body, extra)};
}

// Advances an incremental UTF-8 check over `s`. `need` is how many
// continuation bytes are still expected and [lo, hi] the range allowed for
// the next one; narrowing that range after the lead byte is what rules out
// overlong forms (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
bool utf8_advance(std::string_view s, std::uint8_t& need, std::uint8_t& lo, std::uint8_t& hi) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    if (need == 0) {
      // Fast path: ASCII runs, eight bytes at a time.
      while (i + 8 <= n) {
        std::uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        if ((w & 0x8080808080808080ULL) != 0) break;
        i += 8;
      }
      if (i == n) break;
      const auto c = static_cast<std::uint8_t>(s[i++]);
      lo = 0x80;
      hi = 0xBF;
      if (c < 0x80) continue;
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
      } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      } else {
        return false;  // continuation byte without lead, C0/C1 overlongs, F5..FF
      }
    } else {
      const auto c = static_cast<std::uint8_t>(s[i++]);
      if (c < lo || c > hi) return false;
      --need;
      lo = 0x80;
      hi = 0xBF;
    }
  }
  return true;
}

void unmask(char* p, std::size_t n, const std::uint8_t (&mask)[4], std::size_t pos) {
  // Eight bytes at a time with the key rotated to the current phase; the
  // phase is unchanged after each step because 8 is a multiple of 4.
  std::uint8_t m8[8];
  for (std::size_t j = 0; j < 8; ++j) m8[j] = mask[(pos + j) & 3];
  std::uint64_t m;
  std::memcpy(&m, m8, 8);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + k, 8);
    w ^= m;
    std::memcpy(p + k, &w, 8);
  }
  for (; k < n; ++k) p[k] = static_cast<char>(p[k] ^ mask[(pos + k) & 3]);
}

bool is_control(Opcode op) { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

}  // namespace

// ---- Opening handshake ----------------------------------------------------

std::string accept_key(std::string_view client_key) {
  sha1_ctx ctx;
  sha1_init(&ctx);
  sha1_update(&ctx, client_key.size(), reinterpret_cast<const std::uint8_t*>(client_key.data()));
  sha1_update(&ctx, kGuid.size(), reinterpret_cast<const std::uint8_t*>(kGuid.data()));
  std::uint8_t digest[SHA1_DIGEST_SIZE];
  sha1_digest(&ctx, sizeof digest, digest);
  std::string out(BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE), '\0');
  base64_encode_raw(out.data(), sizeof digest, digest);
  return out;
}

UpgradeDecision check_upgrade(const http::Request& req,
                              std::span<const std::string> allowed_origins) {
  if (!req.has_token("upgrade", "websocket")) return {UpgradeDecision::Kind::PlainHttp, 0, {}};
  if (req.method() != "GET" || req.version_minor() != 1) {
    return reject(400, "websocket upgrade needs GET over HTTP/1.1\n");
  }
  if (!req.has_token("connection", "upgrade")) {
    return reject(400, "websocket upgrade needs Connection: Upgrade\n");
  }
  const auto key = req.header("sec-websocket-key");
  if (req.count("sec-websocket-key") != 1 || !valid_client_key(*key)) {
    return reject(400, "bad Sec-WebSocket-Key\n");
  }
  if (req.count("sec-websocket-version") != 1 || *req.header("sec-websocket-version") != "13") {
    return reject(426, "only websocket version 13 is supported\n",
                  "Sec-WebSocket-Version: 13\r\n");
  }
  if (!allowed_origins.empty()) {
    for (std::size_t i = 0; i < req.header_count(); ++i) {
      if (!http::iequals(req.header_name(i), "origin")) continue;
      const std::string_view origin = req.header_value(i);
      const bool allowed =
          std::any_of(allowed_origins.begin(), allowed_origins.end(),
                      [&](const std::string& a) { return http::iequals(a, origin); });
      if (!allowed) return reject(403, "origin not allowed\n");
    }
  }
  std::string resp =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  resp += accept_key(*key);
  resp += "\r\n\r\n";
  return {UpgradeDecision::Kind::Upgrade, 101, std::move(resp)};
}

// ---- Client frames --------------------------------------------------------

Decoder::Decoder(std::size_t max_message) : max_message_(max_message) {}

bool Decoder::fail(std::uint16_t code, std::string_view reason) {
  status_ = Status::Failed;
  fail_code_ = code;
  fail_reason_ = reason;
  message_.clear();
  message_.shrink_to_fit();  // a failed connection should not pin a large buffer
  control_.clear();
  return false;
}

Decoder::Result Decoder::feed(std::string_view bytes, std::vector<Event>& out) {
  std::size_t i = 0;
  while (status_ == Status::Open) {
    if (stage_ == Stage::Header) {
      while (hdr_len_ < hdr_need_ && i < bytes.size()) {
        hdr_[hdr_len_++] = static_cast<std::uint8_t>(bytes[i++]);
      }
      if (hdr_len_ < hdr_need_) break;
      if (!parse_header()) break;             // failed
      if (stage_ == Stage::Header) continue;  // needs more header bytes
    }
    if (frame_left_ > 0) {
      if (i == bytes.size()) break;
      i += take_payload(bytes.substr(i));
      if (status_ != Status::Open || frame_left_ > 0) break;
    }
    if (!finish_frame(out)) break;
  }
  return result();
}

// Called each time hdr_len_ reaches hdr_need_. The header is checked in
// three steps (first two bytes, extended length, mask) so that a violation
// or an oversized message is refused as soon as it is visible.
bool Decoder::parse_header() {
  const std::uint8_t b0 = hdr_[0];
  const std::uint8_t b1 = hdr_[1];
  const std::uint8_t len7 = b1 & 0x7F;
  const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;

  if (hdr_len_ == 2) {
    const std::uint8_t op = b0 & 0x0F;
    fin_ = (b0 & 0x80) != 0;
    opcode_ = static_cast<Opcode>(op);
    if ((b0 & 0x70) != 0) return fail(kCloseProtocolError, "reserved bits set");
    if (op > 0xA || (op > 0x2 && op < 0x8)) return fail(kCloseProtocolError, "unknown opcode");
    if ((b1 & 0x80) == 0) return fail(kCloseProtocolError, "unmasked client frame");
    if (is_control(opcode_)) {
      if (!fin_) return fail(kCloseProtocolError, "fragmented control frame");
      if (len7 > kMaxControlPayload) return fail(kCloseProtocolError, "control frame too long");
    } else if (opcode_ == Opcode::Continuation && !in_message_) {
      return fail(kCloseProtocolError, "continuation without a message");
    } else if (opcode_ != Opcode::Continuation && in_message_) {
      return fail(kCloseProtocolError, "new message inside a fragmented one");
    }
    if (ext != 0) {
      hdr_need_ = 2 + ext;
      return true;
    }
  }
  if (hdr_len_ == 2 + ext) {  // the payload length is known now
    std::uint64_t len = len7;
    if (ext != 0) {
      len = 0;
      for (std::size_t j = 0; j < ext; ++j) len = (len << 8) | hdr_[2 + j];
    }
    if ((len >> 63) != 0) return fail(kCloseProtocolError, "length high bit set");
    if (!is_control(opcode_) && len > max_message_ - message_.size()) {
      return fail(kCloseTooBig, "message too big");
    }
    frame_left_ = len;
    hdr_need_ = 2 + ext + 4;
    return true;
  }
  // The mask is in: the frame's payload starts.
  std::memcpy(mask_, hdr_ + 2 + ext, 4);
  mask_pos_ = 0;
  stage_ = Stage::Payload;
  if (opcode_ == Opcode::Text || opcode_ == Opcode::Binary) {
    in_message_ = true;
    message_is_text_ = opcode_ == Opcode::Text;
    utf8_need_ = 0;
  }
  return true;
}

std::size_t Decoder::take_payload(std::string_view bytes) {
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(frame_left_, bytes.size()));
  const bool control = is_control(opcode_);
  std::string& dst = control ? control_ : message_;
  const std::size_t old = dst.size();
  // The whole frame's room at once (its length was checked against the
  // limit): no doubling that copies the message and touches its pages
  // again, and the memory budget sees what the frame will hold as soon as
  // it starts, not one doubling at a time.
  if (dst.capacity() < old + frame_left_) dst.reserve(old + static_cast<std::size_t>(frame_left_));
  dst.append(bytes.data(), n);
  unmask(dst.data() + old, n, mask_, mask_pos_);
  mask_pos_ = (mask_pos_ + n) & 3;
  frame_left_ -= n;
  if (!control && message_is_text_ &&
      !utf8_advance(std::string_view(dst).substr(old), utf8_need_, utf8_lo_, utf8_hi_)) {
    fail(kCloseInvalidPayload, "invalid UTF-8 in text message");
  }
  return n;
}

// The whole frame is in: emit what it completes and get ready for the next
// header. Returns false when the decoder stops (close frame or failure).
bool Decoder::finish_frame(std::vector<Event>& out) {
  stage_ = Stage::Header;
  hdr_len_ = 0;
  hdr_need_ = 2;
  switch (opcode_) {
    case Opcode::Ping:
    case Opcode::Pong:
      out.push_back({opcode_ == Opcode::Ping ? Event::Kind::Ping : Event::Kind::Pong, 0,
                     std::move(control_)});
      control_.clear();
      if (!in_message_) ++units_;  // between fragments it is part of the message's time
      return true;
    case Opcode::Close: {
      std::uint16_t code = kCloseNoStatus;
      std::string reason;
      if (control_.size() == 1) return fail(kCloseProtocolError, "close payload of 1 byte");
      if (control_.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(control_[0]) << 8) |
                                          static_cast<std::uint8_t>(control_[1]));
        if (!valid_close_code(code)) return fail(kCloseProtocolError, "invalid close code");
        reason = control_.substr(2);
        if (!valid_utf8(reason)) return fail(kCloseInvalidPayload, "invalid UTF-8 in close reason");
      }
      control_.clear();
      out.push_back({Event::Kind::Close, code, std::move(reason)});
      status_ = Status::Closed;
      message_.clear();
      message_.shrink_to_fit();
      return false;
    }
    default:  // data frames
      if (!fin_) return true;
      if (message_is_text_ && utf8_need_ != 0) {
        return fail(kCloseInvalidPayload, "invalid UTF-8 in text message");
      }
      out.push_back({message_is_text_ ? Event::Kind::Text : Event::Kind::Binary, 0,
                     std::move(message_)});
      message_.clear();
      in_message_ = false;
      ++units_;
      return true;
  }
}

bool valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool valid_utf8(std::string_view s) {
  std::uint8_t need = 0, lo = 0x80, hi = 0xBF;
  return utf8_advance(s, need, lo, hi) && need == 0;
}

// ---- Server frames --------------------------------------------------------

void encode(std::string& out, Opcode op, std::string_view payload) {
  if (is_control(op) && payload.size() > kMaxControlPayload) {
    assert(false && "control frame payload over 125 bytes");
    payload = payload.substr(0, kMaxControlPayload);
  }
  out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(op)));
  const std::uint64_t n = payload.size();
  if (n <= 125) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xFF));
  }
  out.append(payload);
}

void encode_close(std::string& out, std::uint16_t code, std::string_view reason) {
  if (code == kCloseNoStatus) {
    encode(out, Opcode::Close, {});
    return;
  }
  if (reason.size() > kMaxControlPayload - 2) {
    std::size_t cut = kMaxControlPayload - 2;
    // Back up over continuation bytes so the reason stays valid UTF-8.
    while (cut > 0 && (static_cast<std::uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  char payload[kMaxControlPayload];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xFF);
  std::copy(reason.begin(), reason.end(), payload + 2);
  encode(out, Opcode::Close, std::string_view(payload, 2 + reason.size()));
}

}  // namespace glockd::ws

// Unit tests for the websocket handshake, frame decoder and encoder (src/websocket.hpp).
#include "websocket.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace glockd::ws {
namespace {

using Kind = Event::Kind;
using Status = Decoder::Status;

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (const int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// A client frame as a browser would send it: masked with `mask`.
std::string frame(int first_byte, std::string_view payload,
                  std::array<std::uint8_t, 4> mask = {0x37, 0xfa, 0x21, 0x3d}, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  const std::uint64_t n = payload.size();
  const int m = masked ? 0x80 : 0;
  if (n <= 125) {
    f.push_back(static_cast<char>(m | static_cast<int>(n)));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>((n >> s) & 0xFF));
  }
  if (masked) f.append(reinterpret_cast<const char*>(mask.data()), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (masked ? mask[i % 4] : 0)));
  }
  return f;
}

constexpr int kFin = 0x80;
constexpr int kText = kFin | 0x1, kBinary = kFin | 0x2, kClose = kFin | 0x8;
constexpr int kPing = kFin | 0x9, kPong = kFin | 0xA;

struct Decoded {
  Decoder::Result result;
  std::vector<Event> events;
};

Decoded run(std::string_view in, std::size_t max = kDefaultMaxMessage) {
  Decoder d(max);
  Decoded r{{}, {}};
  r.result = d.feed(in, r.events);
  return r;
}

std::uint16_t fail_code(std::string_view in, std::size_t max = kDefaultMaxMessage) {
  const Decoded r = run(in, max);
  return r.result.status == Status::Failed ? r.result.code : 0;
}

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p = bytes({code >> 8, code & 0xFF});
  p += reason;
  return p;
}

// ---- Handshake ------------------------------------------------------------

TEST(WsHandshake, AcceptKeyRfcSample) {
  // RFC 6455 section 1.3 (and 4.2.2); cross-checked with Python's hashlib.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

http::Request parse(std::string_view head) {
  http::RequestParser p;
  const auto r = p.feed(head);
  EXPECT_EQ(r.status, http::RequestParser::Status::Complete) << head;
  return p.request();
}

std::string upgrade_head(std::string_view extra, std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==",
                         std::string_view version = "13", std::string_view start = "GET / HTTP/1.1") {
  std::string h(start);
  h += "\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  if (!key.empty()) h += "Sec-WebSocket-Key: " + std::string(key) + "\r\n";
  if (!version.empty()) h += "Sec-WebSocket-Version: " + std::string(version) + "\r\n";
  h += extra;
  h += "\r\n";
  return h;
}

UpgradeDecision decide(std::string_view head, std::vector<std::string> origins = {}) {
  return check_upgrade(parse(head), origins);
}

TEST(WsHandshake, ValidUpgradeGets101) {
  const auto d = decide(upgrade_head("Origin: http://example.com\r\n"));
  ASSERT_EQ(d.kind, UpgradeDecision::Kind::Upgrade);
  EXPECT_EQ(d.status, 101);
  EXPECT_EQ(d.response,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "\r\n");
}

TEST(WsHandshake, TokensAreCaseInsensitiveAndListed) {
  const auto d = decide(
      "GET /chat HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
      "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n");
  EXPECT_EQ(d.kind, UpgradeDecision::Kind::Upgrade);
}

TEST(WsHandshake, NonUpgradeRequestsArePlainHttp) {
  for (const char* head : {"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
                           "GET /healthz HTTP/1.0\r\n\r\n",
                           "POST /x HTTP/1.1\r\nHost: a\r\n\r\n",
                           "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"}) {
    const auto d = decide(head, {"https://only.example"});
    EXPECT_EQ(d.kind, UpgradeDecision::Kind::PlainHttp) << head;
    EXPECT_EQ(d.status, 0);
    EXPECT_TRUE(d.response.empty());
  }
}

void expect_reject(const UpgradeDecision& d, int status) {
  EXPECT_EQ(d.kind, UpgradeDecision::Kind::Reject);
  EXPECT_EQ(d.status, status);
  const std::string start = "HTTP/1.1 " + std::to_string(status) + " ";
  EXPECT_EQ(d.response.substr(0, start.size()), start);
  EXPECT_NE(d.response.find("Connection: close\r\n"), std::string::npos);
}

TEST(WsHandshake, BadUpgradesAre400) {
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ==", "13", "POST / HTTP/1.1")), 400);
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ==", "13", "GET / HTTP/1.0")), 400);
  expect_reject(decide("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                400);
  expect_reject(decide(upgrade_head("", "")), 400);                              // no key
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ")), 400);        // unpadded
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ=")), 400);       // 23 chars
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ!=")), 400);      // bad char
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25j ZQ==")), 400);     // space
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZSE=")), 400);      // 17 bytes
  expect_reject(decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ==dGhl")), 400);  // too long
  expect_reject(decide(upgrade_head("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n")), 400);
}

TEST(WsHandshake, WrongVersionIs426) {
  for (const char* v : {"8", "12", "14", "", "13, 8"}) {
    const auto d = decide(upgrade_head("", "dGhlIHNhbXBsZSBub25jZQ==", v));
    expect_reject(d, 426);
    EXPECT_NE(d.response.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos) << v;
  }
  expect_reject(decide(upgrade_head("Sec-WebSocket-Version: 13\r\n")), 426);  // duplicate
}

TEST(WsHandshake, OriginAllowlist) {
  const std::vector<std::string> allowed = {"https://app.example", "http://localhost:8080"};
  EXPECT_EQ(decide(upgrade_head("Origin: https://app.example\r\n"), allowed).kind,
            UpgradeDecision::Kind::Upgrade);
  EXPECT_EQ(decide(upgrade_head("Origin: HTTPS://APP.example\r\n"), allowed).kind,
            UpgradeDecision::Kind::Upgrade);
  EXPECT_EQ(decide(upgrade_head("Origin: http://localhost:8080\r\n"), allowed).kind,
            UpgradeDecision::Kind::Upgrade);
  // No Origin: a non-browser client, allowed.
  EXPECT_EQ(decide(upgrade_head(""), allowed).kind, UpgradeDecision::Kind::Upgrade);
  expect_reject(decide(upgrade_head("Origin: https://evil.example\r\n"), allowed), 403);
  expect_reject(decide(upgrade_head("Origin: http://localhost:8081\r\n"), allowed), 403);
  expect_reject(decide(upgrade_head("Origin: null\r\n"), allowed), 403);
  expect_reject(decide(upgrade_head("Origin: https://app.example/\r\n"), allowed), 403);
  expect_reject(
      decide(upgrade_head("Origin: https://app.example\r\nOrigin: https://evil.example\r\n"),
             allowed),
      403);
  // An empty list allows every origin.
  EXPECT_EQ(decide(upgrade_head("Origin: https://evil.example\r\n"), {}).kind,
            UpgradeDecision::Kind::Upgrade);
}

// ---- Decoder: RFC 6455 section 5.7 examples -------------------------------

TEST(WsDecoder, RfcSingleFrameMaskedText) {
  const Decoded r = run(bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(r.result.status, Status::Open);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Text);
  EXPECT_EQ(r.events[0].payload, "Hello");
}

TEST(WsDecoder, RfcUnmaskedFramesAreRefused) {
  // The RFC's unmasked examples are server-to-client; from a client they are 1002.
  EXPECT_EQ(fail_code(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})), 1002);
  EXPECT_EQ(fail_code(bytes({0x01, 0x03, 0x48, 0x65, 0x6c})), 1002);
  EXPECT_EQ(fail_code(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})), 1002);
}

TEST(WsDecoder, RfcFragmentedText) {
  const Decoded r = run(frame(0x01, "Hel") + frame(0x80, "lo"));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Text);
  EXPECT_EQ(r.events[0].payload, "Hello");
}

TEST(WsDecoder, RfcPingAndMaskedPong) {
  Decoded r = run(frame(kPing, "Hello"));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Ping);
  EXPECT_EQ(r.events[0].payload, "Hello");
  r = run(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Pong);
  EXPECT_EQ(r.events[0].payload, "Hello");
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 251) & 0xFF);
  return s;
}

TEST(WsDecoder, RfcBinary256With16BitLength) {
  const std::string payload = pattern(256);
  const std::string f = frame(kBinary, payload);
  ASSERT_EQ(f.substr(0, 4), bytes({0x82, 0xFE, 0x01, 0x00}));
  const Decoded r = run(f);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Binary);
  EXPECT_EQ(r.events[0].payload, payload);
}

TEST(WsDecoder, RfcBinary64KiBWith64BitLength) {
  const std::string payload = pattern(65536);
  const std::string f = frame(kBinary, payload, {0x01, 0x02, 0x03, 0x04});
  ASSERT_EQ(f.substr(0, 10), bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  const Decoded r = run(f);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].payload, payload);
}

// ---- Decoder: behaviour -----------------------------------------------------

TEST(WsDecoder, ControlFramesBetweenFragmentsComeInPlace) {
  const std::string in = frame(0x01, "frag1 ") + frame(kPing, "p1") + frame(0x00, "frag2 ") +
                         frame(kPong, "") + frame(0x80, "end") + frame(kBinary, "b");
  const Decoded r = run(in);
  EXPECT_EQ(r.result.status, Status::Open);
  ASSERT_EQ(r.events.size(), 4u);
  EXPECT_EQ(r.events[0].kind, Kind::Ping);
  EXPECT_EQ(r.events[0].payload, "p1");
  EXPECT_EQ(r.events[1].kind, Kind::Pong);
  EXPECT_EQ(r.events[1].payload, "");
  EXPECT_EQ(r.events[2].kind, Kind::Text);
  EXPECT_EQ(r.events[2].payload, "frag1 frag2 end");
  EXPECT_EQ(r.events[3].kind, Kind::Binary);
  EXPECT_EQ(r.events[3].payload, "b");
}

TEST(WsDecoder, EmptyMessagesAndEmptyFragments) {
  const Decoded r = run(frame(kText, "") + frame(0x02, "") + frame(0x00, "") + frame(0x80, ""));
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].kind, Kind::Text);
  EXPECT_EQ(r.events[0].payload, "");
  EXPECT_EQ(r.events[1].kind, Kind::Binary);
  EXPECT_EQ(r.events[1].payload, "");
}

TEST(WsDecoder, CloseFrames) {
  Decoded r = run(frame(kClose, close_payload(1000, "bye")) + frame(kText, "ignored"));
  EXPECT_EQ(r.result.status, Status::Closed);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, Kind::Close);
  EXPECT_EQ(r.events[0].code, 1000);
  EXPECT_EQ(r.events[0].payload, "bye");

  r = run(frame(kClose, ""));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].code, kCloseNoStatus);

  for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                         3000, 3999, 4000, 4999}) {
    r = run(frame(kClose, close_payload(static_cast<std::uint16_t>(code))));
    EXPECT_EQ(r.result.status, Status::Closed) << code;
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].code, code);
  }
}

TEST(WsDecoder, NothingAfterCloseOrFailure) {
  Decoder d;
  std::vector<Event> ev;
  EXPECT_EQ(d.feed(frame(kClose, close_payload(1001)), ev).status, Status::Closed);
  ev.clear();
  const auto r = d.feed(frame(kText, "late") + frame(kPing, ""), ev);
  EXPECT_EQ(r.status, Status::Closed);
  EXPECT_TRUE(ev.empty());

  Decoder e;
  EXPECT_EQ(e.feed(frame(kText, "ok") + frame(0x83, "x") + frame(kText, "after"), ev).status,
            Status::Failed);
  ASSERT_EQ(ev.size(), 1u);  // the frame before the violation is delivered
  EXPECT_EQ(ev[0].payload, "ok");
  ev.clear();
  const auto again = e.feed(frame(kText, "more"), ev);
  EXPECT_EQ(again.status, Status::Failed);
  EXPECT_EQ(again.code, 1002);
  EXPECT_EQ(again.reason, "unknown opcode");
  EXPECT_TRUE(ev.empty());
}

// ---- Decoder: every violation with its close code ---------------------------

TEST(WsViolations, ProtocolErrors1002) {
  EXPECT_EQ(fail_code(frame(kText, "x", {}, false)), 1002);  // unmasked
  for (const int rsv : {0x40, 0x20, 0x10}) EXPECT_EQ(fail_code(frame(kText | rsv, "x")), 1002);
  for (const int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(fail_code(frame(kFin | op, "x")), 1002) << op;
  }
  EXPECT_EQ(fail_code(frame(kPing, std::string(126, 'p'))), 1002);  // control > 125
  EXPECT_EQ(fail_code(frame(kClose, std::string(126, 'c'))), 1002);
  EXPECT_EQ(run(frame(kPing, std::string(125, 'p'))).events.size(), 1u);  // 125 is fine
  EXPECT_EQ(fail_code(frame(0x09, "p")), 1002);                          // fragmented ping
  EXPECT_EQ(fail_code(frame(0x08, "")), 1002);                           // fragmented close
  EXPECT_EQ(fail_code(frame(0x80, "x")), 1002);                  // continuation, no start
  EXPECT_EQ(fail_code(frame(0x00, "x")), 1002);
  EXPECT_EQ(fail_code(frame(0x01, "a") + frame(kText, "b")), 1002);  // new message mid-way
  EXPECT_EQ(fail_code(frame(0x02, "a") + frame(0x01, "b")), 1002);
  EXPECT_EQ(fail_code(frame(kText, "done") + frame(0x80, "x")), 1002);
  EXPECT_EQ(fail_code(frame(kClose, "\x03")), 1002);  // 1-byte close payload
  for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(fail_code(frame(kClose, close_payload(static_cast<std::uint16_t>(code)))), 1002)
        << code;
  }
  // 64-bit length with the high bit set: refused from the header alone.
  EXPECT_EQ(fail_code(bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0})), 1002);
}

TEST(WsViolations, InvalidUtf8Is1007) {
  for (const char* bad : {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
                          "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
                          "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80", "ab\xbf",
                          "\xe2\x82", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"}) {
    EXPECT_EQ(fail_code(frame(kText, bad)), 1007) << bad;
  }
  // Binary messages are not checked.
  EXPECT_EQ(fail_code(frame(kBinary, "\xff\xc0")), 0);
  // Valid edge cases pass.
  for (const char* good : {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", "\x7f", "\xc2\x80",
                           "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                           "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    const Decoded r = run(frame(kText, good));
    ASSERT_EQ(r.events.size(), 1u) << good;
    EXPECT_EQ(r.events[0].payload, good);
  }
  // Close reason.
  EXPECT_EQ(fail_code(frame(kClose, close_payload(1000, "\xed\xa0\x80"))), 1007);
  EXPECT_EQ(fail_code(frame(kClose, close_payload(1000, "\xe2\x82"))), 1007);
}

TEST(WsViolations, Utf8AcrossFragments) {
  // A code point split between fragments is fine.
  Decoded r = run(frame(0x01, "\xe2") + frame(0x00, "\x82") + frame(0x80, "\xac!"));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].payload, "\xe2\x82\xac!");
  // Left incomplete at the end of the message: 1007.
  EXPECT_EQ(fail_code(frame(0x01, "ok") + frame(0x80, "\xe2\x82")), 1007);
  // Invalid text fails fast, before the message (or even the frame) ends.
  Decoder d;
  std::vector<Event> ev;
  const std::string f = frame(0x01, std::string("abc\xff") + std::string(100, 'x'));
  const auto res = d.feed(std::string_view(f).substr(0, 10), ev);
  EXPECT_EQ(res.status, Status::Failed);
  EXPECT_EQ(res.code, 1007);
}

TEST(WsViolations, TooBigIs1009FromTheHeader) {
  // Declared over the limit: refused before any payload (or even the mask) arrives.
  const std::string f = frame(kBinary, std::string(101, 'x'));
  EXPECT_EQ(fail_code(f.substr(0, 4), 100), 1009);
  EXPECT_EQ(fail_code(frame(kBinary, std::string(100, 'x')), 100), 0);
  EXPECT_EQ(fail_code(bytes({0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})), 1009);
  EXPECT_EQ(fail_code(bytes({0x81, 0xFE, 0xFF, 0xFF}), 65534), 1009);
  EXPECT_EQ(fail_code(bytes({0x81, 0x8B}), 10), 1009);  // 7-bit length too
  // Across fragments: the sum counts.
  EXPECT_EQ(fail_code(frame(0x02, std::string(60, 'a')) + frame(0x80, std::string(41, 'b')), 100),
            1009);
  const Decoded ok = run(frame(0x02, std::string(60, 'a')) + frame(kPing, std::string(100, 'p')) +
                         frame(0x80, std::string(40, 'b')),
                     100);
  ASSERT_EQ(ok.events.size(), 2u);  // control frames do not count
  EXPECT_EQ(ok.events[1].payload.size(), 100u);
  // The limit applies per message, not per connection.
  EXPECT_EQ(fail_code(frame(kText, std::string(100, 'a')) + frame(kText, std::string(100, 'b')),
                      100),
            0);
}

// ---- Decoder: arbitrary splits ---------------------------------------------

std::string multi_frame_input() {
  return frame(0x01, "Hel", {1, 2, 3, 4}) + frame(kPing, "ping!", {9, 8, 7, 6}) +
         frame(0x00, "lo \xe2\x82", {0xff, 0, 0xff, 0}) + frame(0x80, "\xac wo", {5, 5, 5, 5}) +
         frame(kBinary, pattern(300), {0xaa, 0xbb, 0xcc, 0xdd}) + frame(kText, "") +
         frame(kPong, "p") + frame(kClose, close_payload(1000, "done"));
}

void expect_same(const std::vector<Event>& a, const std::vector<Event>& b, std::string_view what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind) << what << " event " << i;
    EXPECT_EQ(a[i].code, b[i].code) << what << " event " << i;
    EXPECT_EQ(a[i].payload, b[i].payload) << what << " event " << i;
  }
}

TEST(WsDecoder, EverySplitPointGivesTheSameEvents) {
  const std::string in = multi_frame_input();
  const Decoded whole = run(in);
  ASSERT_EQ(whole.result.status, Status::Closed);
  ASSERT_EQ(whole.events.size(), 6u);
  EXPECT_EQ(whole.events[1].payload, "Hello \xe2\x82\xac wo");
  EXPECT_EQ(whole.events[2].payload, pattern(300));
  for (std::size_t k = 0; k <= in.size(); ++k) {
    Decoder d;
    std::vector<Event> ev;
    d.feed(std::string_view(in).substr(0, k), ev);
    const auto r = d.feed(std::string_view(in).substr(k), ev);
    EXPECT_EQ(r.status, Status::Closed);
    expect_same(whole.events, ev, "split at " + std::to_string(k));
  }
}

TEST(WsDecoder, EveryPairOfSplitPointsAndBytewise) {
  const std::string in = frame(0x01, "ab", {1, 2, 3, 4}) + frame(kPing, "xyz") +
                         frame(0x80, "cde", {4, 3, 2, 1}) + frame(kBinary, pattern(130));
  const Decoded whole = run(in);
  ASSERT_EQ(whole.events.size(), 3u);
  for (std::size_t a = 0; a <= in.size(); ++a) {
    for (std::size_t b = a; b <= in.size(); ++b) {
      Decoder d;
      std::vector<Event> ev;
      d.feed(std::string_view(in).substr(0, a), ev);
      d.feed(std::string_view(in).substr(a, b - a), ev);
      d.feed(std::string_view(in).substr(b), ev);
      expect_same(whole.events, ev, "splits " + std::to_string(a) + "," + std::to_string(b));
    }
  }
  Decoder d;
  std::vector<Event> ev;
  for (const char c : in) d.feed(std::string_view(&c, 1), ev);
  expect_same(whole.events, ev, "bytewise");
}

// ---- Encoder ----------------------------------------------------------------

TEST(WsEncoder, LengthForms) {
  std::string out;
  encode(out, Opcode::Text, "Hello");  // the RFC's unmasked example
  EXPECT_EQ(out, bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  out.clear();
  encode(out, Opcode::Binary, std::string(125, 'x'));
  EXPECT_EQ(out.substr(0, 2), bytes({0x82, 0x7D}));
  EXPECT_EQ(out.size(), 127u);
  out.clear();
  encode(out, Opcode::Binary, pattern(256));
  EXPECT_EQ(out.substr(0, 4), bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(out.substr(4), pattern(256));
  out.clear();
  encode(out, Opcode::Text, std::string(65535, 'y'));
  EXPECT_EQ(out.substr(0, 4), bytes({0x81, 0x7E, 0xFF, 0xFF}));
  out.clear();
  encode(out, Opcode::Binary, pattern(65536));
  EXPECT_EQ(out.substr(0, 10), bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(out.size(), 65546u);
  out = "keep";
  encode(out, Opcode::Pong, "Hello");  // appends
  EXPECT_EQ(out, "keep" + bytes({0x8A, 0x05}) + "Hello");
}

TEST(WsEncoder, Close) {
  std::string out;
  encode_close(out, 1000, "bye");
  EXPECT_EQ(out, bytes({0x88, 0x05, 0x03, 0xE8}) + "bye");
  out.clear();
  encode_close(out, 1009);
  EXPECT_EQ(out, bytes({0x88, 0x02, 0x03, 0xF1}));
  out.clear();
  encode_close(out, kCloseNoStatus, "ignored");
  EXPECT_EQ(out, bytes({0x88, 0x00}));
  // A long reason is cut to 123 bytes without splitting a code point.
  out.clear();
  std::string reason(122, 'r');
  reason += "\xe2\x82\xac";  // bytes 122..124: the cut would land inside
  encode_close(out, 1002, reason);
  ASSERT_EQ(out.size(), 2u + 2u + 122u);
  EXPECT_EQ(static_cast<std::uint8_t>(out[1]), 124);
  EXPECT_TRUE(valid_utf8(std::string_view(out).substr(4)));
}

TEST(WsEncoder, RoundTripThroughDecoderOnceMasked) {
  // The decoder accepts what the encoder produces once a client mask is added.
  std::string out;
  encode(out, Opcode::Text, "round trip");
  const std::string masked = frame(static_cast<std::uint8_t>(out[0]), out.substr(2));
  const Decoded r = run(masked);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].payload, "round trip");
}

TEST(WsUtil, CloseCodes) {
  EXPECT_TRUE(valid_close_code(1000));
  EXPECT_TRUE(valid_close_code(4999));
  EXPECT_FALSE(valid_close_code(1005));
  EXPECT_FALSE(valid_close_code(1006));
  EXPECT_FALSE(valid_close_code(2999));
  EXPECT_FALSE(valid_close_code(5000));
}

}  // namespace
}  // namespace glockd::ws

// libFuzzer target for the websocket frame decoder and encoder: any byte
// stream, fed whole, bytewise or split at input-chosen points, must give the
// same events and the same outcome, and every event must respect the RFC.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "websocket.hpp"

namespace {

using glockd::ws::Decoder;
using glockd::ws::Event;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  Decoder::Result result;
  std::vector<Event> events;
};

bool same(const Outcome& a, const Outcome& b) {
  if (a.result.status != b.result.status || a.result.code != b.result.code ||
      a.result.reason != b.result.reason || a.events.size() != b.events.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    const Event& x = a.events[i];
    const Event& y = b.events[i];
    if (x.kind != y.kind || x.code != y.code || x.payload != y.payload) return false;
  }
  return true;
}

// Chunk sizes come from a tiny deterministic generator seeded by the input,
// so a crash reproduces from the input file alone.
Outcome feed_split(std::string_view in, std::size_t max, std::uint32_t seed) {
  Decoder d(max);
  Outcome o{{}, {}};
  o.result = d.feed({}, o.events);  // an empty read changes nothing
  std::size_t pos = 0;
  while (pos < in.size()) {
    seed = seed * 1664525u + 1013904223u;
    const std::size_t n = std::min<std::size_t>(in.size() - pos, 1 + (seed >> 24) % 23);
    o.result = d.feed(in.substr(pos, n), o.events);
    pos += n;
  }
  return o;
}

// A server frame turned into the client frame a browser would send.
std::string mask_frame(std::string_view server_frame, std::uint32_t key) {
  std::size_t hdr = 2;
  const auto len7 = static_cast<std::uint8_t>(server_frame[1]) & 0x7F;
  if (len7 == 126) hdr = 4;
  if (len7 == 127) hdr = 10;
  std::string out(server_frame.substr(0, hdr));
  out[1] = static_cast<char>(out[1] | 0x80);
  const char mask[4] = {static_cast<char>(key), static_cast<char>(key >> 8),
                        static_cast<char>(key >> 16), static_cast<char>(key >> 24)};
  out.append(mask, 4);
  for (std::size_t i = hdr; i < server_frame.size(); ++i) {
    out.push_back(static_cast<char>(server_frame[i] ^ mask[(i - hdr) % 4]));
  }
  return out;
}

// An independent UTF-8 check written the textbook way (decode each code
// point, then judge it), to catch a shared blind spot in ws::valid_utf8's
// byte-range tables.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<std::uint8_t>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      len = 1, cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<std::uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const std::uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void check_events(const Outcome& o, std::size_t max) {
  using Kind = Event::Kind;
  const auto status = o.result.status;
  if (status == Decoder::Status::Failed) {
    const auto c = o.result.code;
    check(c == 1002 || c == 1007 || c == 1009);
    check(!o.result.reason.empty());
  } else {
    check(o.result.code == 0);
  }
  for (std::size_t i = 0; i < o.events.size(); ++i) {
    const Event& e = o.events[i];
    const bool last = i + 1 == o.events.size();
    switch (e.kind) {
      case Kind::Text:
        check(reference_utf8(e.payload));
        [[fallthrough]];
      case Kind::Binary:
        check(e.payload.size() <= max && e.code == 0);
        break;
      case Kind::Ping:
      case Kind::Pong:
        check(e.payload.size() <= 125 && e.code == 0);
        break;
      case Kind::Close:
        check(last && status == Decoder::Status::Closed);
        check(e.payload.size() <= 123 && reference_utf8(e.payload));
        check(e.code == glockd::ws::kCloseNoStatus
                  ? e.payload.empty()
                  : glockd::ws::valid_close_code(e.code));
        break;
    }
  }
  if (status == Decoder::Status::Closed) {
    check(!o.events.empty() && o.events.back().kind == Kind::Close);
  }
}

// Every event, re-encoded by the server encoder and masked like a client
// would, decodes back to itself.
void check_round_trip(const Outcome& o, std::size_t max, std::uint32_t key) {
  using glockd::ws::Opcode;
  for (const Event& e : o.events) {
    std::string wire;
    switch (e.kind) {
      case Event::Kind::Text: glockd::ws::encode(wire, Opcode::Text, e.payload); break;
      case Event::Kind::Binary: glockd::ws::encode(wire, Opcode::Binary, e.payload); break;
      case Event::Kind::Ping: glockd::ws::encode(wire, Opcode::Ping, e.payload); break;
      case Event::Kind::Pong: glockd::ws::encode(wire, Opcode::Pong, e.payload); break;
      case Event::Kind::Close: glockd::ws::encode_close(wire, e.code, e.payload); break;
    }
    Decoder d(max);
    Outcome back{{}, {}};
    back.result = d.feed(mask_frame(wire, key), back.events);
    check(back.events.size() == 1);
    const Event& b = back.events[0];
    check(b.kind == e.kind && b.code == e.code && b.payload == e.payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  // Byte 0 picks the message limit: small ones reach 1009 often.
  const std::size_t max = data[0] < 0xF0 ? std::size_t{data[0]} * 3 : glockd::ws::kDefaultMaxMessage;
  const std::uint32_t seed = data[1] | (std::uint32_t{data[2]} << 8);
  const std::string_view in(reinterpret_cast<const char*>(data) + 3, size - 3);

  check(glockd::ws::valid_utf8(in) == reference_utf8(in));

  Outcome whole{{}, {}};
  {
    Decoder d(max);
    whole.result = d.feed(in, whole.events);
    // After Closed or Failed nothing more is delivered.
    if (whole.result.status != Decoder::Status::Open) {
      std::vector<Event> more;
      const auto again = d.feed(in, more);
      check(more.empty() && again.status == whole.result.status && again.code == whole.result.code);
    }
  }
  check_events(whole, max);
  check(same(whole, feed_split(in, max, seed)));

  // One byte per read is the worst split; it is O(size) calls, so keep it to
  // inputs small enough that it does not dominate the run time.
  if (in.size() > 16384) {
    check_round_trip(whole, glockd::ws::kDefaultMaxMessage, seed * 2654435761u);
    return 0;
  }
  Outcome bytewise{{}, {}};
  {
    Decoder d(max);
    for (const char c : in) bytewise.result = d.feed(std::string_view(&c, 1), bytewise.events);
    if (in.empty()) bytewise.result = d.feed({}, bytewise.events);
  }
  check(same(whole, bytewise));

  check_round_trip(whole, glockd::ws::kDefaultMaxMessage, seed * 2654435761u);
  return 0;
}

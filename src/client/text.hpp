// Small text helpers of the client library: prefixes, numbers, and server
// text made safe to show in a message.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace glockd::client {

// A `dump` of a large table is one line; past this the peer is not glockd.
inline constexpr std::size_t kMaxAnswerLine = 256u << 20;

inline bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

inline std::optional<std::uint64_t> parse_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Text from the server (or a name) for a message: at most `max` bytes, and
// no byte that a terminal could take for a control sequence.
inline std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (const char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace glockd::client

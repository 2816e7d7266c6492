// Helpers shared by the protocol's source files: building answer lines and
// parsing the numbers of Part 2 requests.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "protocol.hpp"

namespace glockd::protocol_detail {

inline constexpr std::uint64_t kMaxGraceMs = 600000;
inline constexpr std::uint32_t kMaxWaitMs = 2147483647;

// Parses a decimal in [lo, hi] that is the whole of `text`.
inline bool parse_number(std::string_view text, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= lo && out <= hi;
}

// Splits "first rest" at the first space (the argument is already normalised).
inline std::pair<std::string_view, std::string_view> split_word(std::string_view s) {
  const std::size_t sp = s.find(' ');
  if (sp == std::string_view::npos) return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

// Assembled on the stack and appended once: answers are built on every
// request, and std::string::resize would zero the bytes before the copy.
// The head is a literal, so its copy compiles to a few moves.
template <std::size_t N>
inline void answer(std::string& out, const char (&head)[N], std::string_view name) {
  constexpr std::size_t kHead = N - 1;
  char buf[160];
  const std::size_t len = kHead + name.size() + 1;
  if (len > sizeof buf) {
    out.append(head, kHead).append(name).push_back('\n');
    return;
  }
  std::memcpy(buf, head, kHead);
  if (!name.empty()) std::memcpy(buf + kHead, name.data(), name.size());
  buf[len - 1] = '\n';
  out.append(buf, len);
}

inline void answer_n(std::string& out, std::uint64_t n, std::string_view head, std::string_view name) {
  append_decimal(out, n);
  out.append(head);
  out.append(name);
  out.push_back('\n');
}

}  // namespace glockd::protocol_detail

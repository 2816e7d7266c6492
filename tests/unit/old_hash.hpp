// The lock table's hash before it was keyed (commit 68a58a1), and names
// that all collide under it: the hash-flooding attack the keyed hash
// stops. Shared by the unit test and bench/hashflood.cpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace glockd::flood {

inline constexpr std::uint64_t kMul = 0x9e3779b97f4a7c15ULL;

// One 8-byte step of the old hash: invertible, and public.
inline std::uint64_t old_step(std::uint64_t h, std::uint64_t w) {
  h = (h ^ w) * kMul;
  return h ^ (h >> 29);
}

inline std::uint64_t old_mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// LockTable::hash_of as it was; kind 0 is exclusive, 1 shared.
inline std::uint32_t old_hash(int kind, std::string_view name) {
  std::uint64_t h = (name.size() << 1) ^ static_cast<std::uint64_t>(kind);
  const char* p = name.data();
  std::size_t n = name.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = old_step(h, w);
  }
  if (n > 0) {
    std::uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h = (h ^ tail) * kMul;
  }
  h = old_mix(h);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

// `count` distinct 16-byte names with one old hash: the first word is
// "f" and a number; the second cancels the state the first left, so the
// state before the last step, and so the hash, is the same for all.
inline std::vector<std::string> old_hash_collisions(std::size_t count, int kind = 0) {
  constexpr std::uint64_t kTarget = 0x0123456789abcdefULL;
  std::vector<std::string> names;
  names.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    char first[24];  // "f" and 7 digits fill the word; count stays under 10^7
    std::snprintf(first, sizeof first, "f%07zu", i % 10000000);
    std::uint64_t w1;
    std::memcpy(&w1, first, 8);
    const std::uint64_t h1 = old_step((16u << 1) ^ static_cast<std::uint64_t>(kind), w1);
    const std::uint64_t w2 = h1 ^ kTarget;
    std::string name(16, '\0');
    std::memcpy(name.data(), &w1, 8);
    std::memcpy(name.data() + 8, &w2, 8);
    names.push_back(std::move(name));
  }
  return names;
}

}  // namespace glockd::flood

// TokenMark: the fencing-token high-water mark kept in --state-dir. Tokens
// are handed out from blocks reserved here before any of them is used, the
// way a database sequence does, so a restart after a crash, a fast run or a
// clock stepped back never issues a token that was issued before.
#pragma once

#include <cstdint>
#include <string>

#include "fd.hpp"
#include "lock_table.hpp"

namespace glockd {

// The wall clock in microseconds: where tokens start without a state
// directory, and the least they start at with one.
std::uint64_t clock_token();

class TokenMark final : public TokenReserve {
 public:
  static constexpr std::uint64_t kDefaultBlock = std::uint64_t{1} << 20;
  static constexpr const char* kFileName = "fencing-token";

  explicit TokenMark(std::uint64_t block = kDefaultBlock) : block_(block) {}

  // Opens DIR and reads the mark left by an earlier run (0 when there is
  // none). Returns a message naming the directory or file on failure.
  std::string open(const std::string& dir);
  // Reserves the first block above both the stored mark and `clock_token`
  // (the wall clock in microseconds) and stores its end; the table then
  // issues tokens from first() up to mark(). Fails with a message.
  std::string start(std::uint64_t clock_token);
  std::uint64_t first() const { return first_; }
  std::uint64_t mark() const { return mark_; }
  std::uint64_t stored_before() const { return stored_before_; }

  // TokenReserve: the table used up its block; store the next one.
  std::uint64_t extend(std::uint64_t next) override;

 private:
  std::string store(std::uint64_t mark);

  std::uint64_t block_;
  std::string dir_;
  UniqueFd dir_fd_;
  std::uint64_t stored_before_ = 0;
  std::uint64_t first_ = 0;
  std::uint64_t mark_ = 0;
};

}  // namespace glockd

// TokenMark: reading and durably writing the fencing-token high-water mark
// (write a temporary file, fsync, rename over the mark, fsync the directory).
#include "token_mark.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

namespace glockd {

namespace {

// JavaScript clients read tokens as doubles: every token stays below 2^53.
constexpr std::uint64_t kTokenCeiling = std::uint64_t{1} << 53;
// A start needs this much room below the ceiling (2^40 tokens: 12 days at a
// million acquisitions a second), so a mark near it refuses the start
// instead of running into the ceiling later.
constexpr std::uint64_t kStartHeadroom = std::uint64_t{1} << 40;
constexpr const char* kTempName = "fencing-token.tmp";

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::uint64_t clock_token() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string TokenMark::open(const std::string& dir) {
  dir_ = dir;
  dir_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_)
    return "--state-dir " + dir + ": cannot open it: " + errno_text(errno) +
           (errno == ENOENT ? " (create the directory first)" : "");
  // One glockd per state directory: two would race on the mark, and either
  // could hand out tokens the other reserved.
  if (::flock(dir_fd_.get(), LOCK_EX | LOCK_NB) != 0)
    return "--state-dir " + dir + ": " +
           (errno == EWOULDBLOCK ? std::string("another glockd is using it; give each instance "
                                               "its own state directory")
                                 : "cannot lock it: " + errno_text(errno));
  UniqueFd f{::openat(dir_fd_.get(), kFileName, O_RDONLY | O_CLOEXEC)};
  if (!f) {
    if (errno == ENOENT) return {};  // first start with this directory
    return "--state-dir " + dir + ": cannot read " + kFileName + ": " + errno_text(errno);
  }
  // The file is what store() writes: decimal digits and a newline.
  char buf[32];
  const ssize_t n = ::read(f.get(), buf, sizeof buf);
  if (n < 0) return "--state-dir " + dir + ": cannot read " + kFileName + ": " + errno_text(errno);
  std::string_view text(buf, static_cast<std::size_t>(n));
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), stored_before_);
  if (n == sizeof buf || text.empty() || ec != std::errc() ||
      end != text.data() + text.size())
    return "--state-dir " + dir + ": " + kFileName +
           " does not hold a token number (decimal digits and a newline); restore it, or "
           "remove it to seed tokens from the clock alone";
  return {};
}

std::string TokenMark::start(std::uint64_t clock_token) {
  first_ = std::max(clock_token, stored_before_);
  if (first_ == 0) first_ = 1;
  if (first_ > kTokenCeiling - kStartHeadroom || block_ > kStartHeadroom)
    return "--state-dir " + dir_ + ": the fencing-token mark " + std::to_string(first_) +
           " leaves too little room below 2^53; tokens cannot grow much further";
  if (std::string err = store(first_ + block_); !err.empty())
    return "--state-dir " + dir_ + ": cannot store the fencing-token mark: " + err +
           " (the directory must be writable by glockd)";
  mark_ = first_ + block_;
  return {};
}

std::uint64_t TokenMark::extend(std::uint64_t next) {
  if (next >= kTokenCeiling - 1) {
    // Only after 2^40 tokens in one run from a start at the headroom: go
    // on (tokens still grow) rather than refuse every lock, and say so.
    spdlog::error("fencing tokens reached 2^53: JavaScript clients cannot tell them apart "
                  "any more, and the next start will be refused");
    return ~std::uint64_t{0};
  }
  const std::uint64_t want = std::min(next + block_, kTokenCeiling - 1);
  // Not stored (disk full, directory gone): go on with this block in memory
  // rather than refuse every lock; tokens then grow across a restart only
  // as the clock-seeded ones do. Logged once per block.
  if (std::string err = store(want); !err.empty())
    spdlog::error("--state-dir {}: cannot store the fencing-token mark {}: {}; a restart now "
                  "keeps tokens growing only while the clock runs ahead of them",
                  dir_, want, err);
  mark_ = want;
  return want;
}

std::string TokenMark::store(std::uint64_t mark) {
  const std::string text = std::to_string(mark) + "\n";
  // A fresh file, never whatever a symlink of that name points to.
  ::unlinkat(dir_fd_.get(), kTempName, 0);
  UniqueFd f{::openat(dir_fd_.get(), kTempName,
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (!f) return std::string("create ") + kTempName + ": " + errno_text(errno);
  if (::write(f.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return std::string("write ") + kTempName + ": " + errno_text(errno);
  if (::fsync(f.get()) != 0) return std::string("fsync ") + kTempName + ": " + errno_text(errno);
  f.reset();
  if (::renameat(dir_fd_.get(), kTempName, dir_fd_.get(), kFileName) != 0)
    return std::string("rename to ") + kFileName + ": " + errno_text(errno);
  // The rename itself must survive a power cut before any token is used.
  if (::fsync(dir_fd_.get()) != 0) return std::string("fsync the directory: ") + errno_text(errno);
  return {};
}

}  // namespace glockd

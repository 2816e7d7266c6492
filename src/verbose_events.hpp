// VerboseEvents: the per-connection lines the original glockd prints under
// -verbose (obtained, released, orphaned, renamed, invalid), at debug level.
#pragma once

#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace glockd {

// Prints events as the original glockd does under -verbose.
class VerboseEvents final : public Events {
 public:
  explicit VerboseEvents(const Protocol& server) : server_(server) {}
  void obtained(ConnId c, LockKind k, std::string_view name) override {
    spdlog::debug("{} obtained {} for {}", server_.addr(c), kind(k), name);
  }
  void released(ConnId c, LockKind k, std::string_view name) override {
    spdlog::debug("{} released {} for {}", server_.addr(c), kind(k), name);
  }
  void orphaned(ConnId c, LockKind k, std::string_view name) override {
    spdlog::debug("{} orphaned {} {}", server_.addr(c), kind(k), name);
  }
  void renamed(ConnId c, std::string_view name) override {
    spdlog::debug("{} changed their name to '{}'", server_.addr(c), name);
  }
  void invalid(ConnId c, std::string_view line) override {
    spdlog::debug("{} invalid command '{}'", server_.addr(c), line);
  }

 private:
  static const char* kind(LockKind k) { return k == LockKind::Shared ? "shared lock" : "lock"; }
  const Protocol& server_;
};

}  // namespace glockd

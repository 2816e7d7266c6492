// MemoryBudget: --max-memory, the bound on what clients together make the
// daemon hold: the lock table (names, entries, holds, waiters, its index)
// and the connections' buffers (queued requests, unsent answers, partial
// lines and websocket messages), which the loop reports as they change.
// Pure: the protocol asks it before a request would grow the table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lock_table.hpp"

namespace glockd {

class MemoryBudget {
 public:
  MemoryBudget(std::size_t limit, const LockTable& table) : limit_(limit), table_(table) {
    refresh();
  }

  std::size_t limit() const { return limit_; }
  void set_limit(std::size_t limit) {
    limit_ = limit;
    refresh();
  }
  std::size_t buffered() const { return buffered_; }
  std::size_t used() const { return table_.memory_bytes() + buffered_ + external_; }
  // Memory held for clients outside the table and the buffers: OpenSSL's
  // state of TLS connections (the loop sets it every turn).
  void set_external(std::size_t bytes) { external_ = bytes; }
  std::size_t external() const { return external_; }
  // At the budget: requests that would grow the table are refused, and
  // inspection answers (as large as the table) wait their turn. As of the
  // last refresh(): the loop refreshes it every turn and whenever a
  // connection's buffers change, so a turn (at most kTurnSlice of
  // requests) may pass the budget by what it adds; a request pays one load.
  bool full() const { return full_; }
  void refresh() { full_ = used() >= limit_; }

  // A connection's buffers went from `before` to `after` bytes.
  void rebuffer(std::size_t before, std::size_t after) {
    buffered_ += after - before;
    refresh();
  }

  // One inspection answer (d, sd, dump, who) may be made past the budget
  // at a time, so a full table can still be looked at: the connection that
  // holds this turn until its unsent answers are read, or it goes.
  bool admit_inspection(ConnId conn) {
    if (!full() || inspector_ == conn) return true;
    if (inspector_ != kNil) return false;
    inspector_ = conn;
    return true;
  }
  ConnId inspector() const { return inspector_; }
  void inspection_done(ConnId conn) {
    if (inspector_ == conn) inspector_ = kNil;
  }

 private:
  std::size_t limit_;
  const LockTable& table_;
  std::size_t external_ = 0;
  std::size_t buffered_ = 0;  // unsigned arithmetic: rebuffer() may wrap and come back
  ConnId inspector_ = kNil;
  bool full_ = false;
};

}  // namespace glockd

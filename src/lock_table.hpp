// LockTable: every held lock, exclusive and shared, in one open-addressing
// index over a slab of entries. Each connection's holds form an intrusive
// list (Holdings), so dropping a connection costs O(locks it holds).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "arena.hpp"
#include "free_list.hpp"

namespace glockd {

using ConnId = std::uint32_t;
inline constexpr std::uint32_t kNil = 0xffffffffu;

enum class LockKind : std::uint8_t { Exclusive = 0, Shared = 1 };

// Per-connection view of what it holds; owned by the connection, changed
// only through LockTable.
struct Holdings {
  std::uint32_t head = kNil;    // most recent hold first
  std::uint32_t waiter = kNil;  // the one queued wait (w/sw), if any
  std::uint32_t exclusive = 0;
  std::uint32_t shared = 0;
  std::size_t total() const { return exclusive + shared; }
};

// A queued waiter that has just been given its lock. `name` stays valid
// until the table is changed again.
struct Grant {
  ConnId conn;
  LockKind kind;
  std::uint32_t holders;
  std::string_view name;
};

struct WaitLimits {
  std::size_t per_lock = 10000;
  std::size_t total = 100000;
};

// Where the table gets more fencing tokens once it has used up the block
// it was given (TokenMark keeps them in --state-dir).
class TokenReserve {
 public:
  virtual ~TokenReserve() = default;
  // Tokens from `next` are about to be issued: reserve more and return the
  // new end (exclusive) of what may be issued.
  virtual std::uint64_t extend(std::uint64_t next) = 0;
};

// The secret key of the index's hash (SipHash-2-4). The daemon draws it
// from the kernel at start; the all-zero default is for tests only.
struct HashKey {
  std::array<unsigned char, 16> bytes{};
};

class LockTable {
 public:
  // `first_token` seeds fencing tokens so they grow across restarts.
  explicit LockTable(std::uint64_t first_token = 1, WaitLimits limits = {},
                     const HashKey& key = {});
  LockTable(const LockTable&) = delete;
  LockTable& operator=(const LockTable&) = delete;

  struct Acquired {
    bool ok = false;          // held by this connection after the call
    bool newly = false;       // it was not held by this connection before
    std::uint32_t holders = 0;  // shared: holders now; exclusive: 1 when ok
  };

  // Issue tokens from `first`, asking `reserve` for more at `limit`.
  void seed_tokens(std::uint64_t first, std::uint64_t limit, TokenReserve* reserve) {
    next_token_ = first;
    token_limit_ = limit;
    token_reserve_ = reserve;
  }

  // The token the next exclusive acquisition gets.
  std::uint64_t next_token() const { return next_token_; }

  Acquired acquire(ConnId conn, Holdings& h, std::string_view name);
  bool release(ConnId conn, Holdings& h, std::string_view name);
  bool is_locked(std::string_view name) const;
  // The holder of an exclusive lock, or kNil.
  ConnId holder(std::string_view name) const;
  // Whether conn holds `name` of that kind.
  bool holds(ConnId conn, const Holdings& h, LockKind kind, std::string_view name) const;
  // Fencing token of conn's hold on exclusive `name`, 0 when not held.
  std::uint64_t token(ConnId conn, std::string_view name) const;

  Acquired acquire_shared(ConnId conn, Holdings& h, std::string_view name);
  bool release_shared(ConnId conn, Holdings& h, std::string_view name);
  std::uint32_t shared_holders(std::string_view name) const;

  // Refused: not free and no queueing asked for; Full: the queue is at
  // --max-waiters or --max-waiters-per-lock.
  enum class WaitStatus { Granted, Queued, Refused, Full };
  struct Waited {
    WaitStatus status;
    std::uint32_t holders;  // when Granted
  };
  // Takes `name` now if it can, else queues conn (FIFO) until it can.
  // limit 0: the exclusive lock; limit N: the shared lock while it has fewer
  // than N holders. Refused: over the waiter limits. queue=false: never queue.
  Waited wait(ConnId conn, Holdings& h, std::string_view name, std::uint32_t limit, bool queue);
  // Removes conn's queued wait; calls f(kind, name) before the name may go.
  template <class F>
  void cancel_wait(Holdings& h, F&& f) {
    if (h.waiter == kNil) return;
    const std::uint32_t w = h.waiter;
    const std::uint32_t e = waiters_[w].entry;
    f(entries_[e].kind, entries_[e].name);
    unlink_waiter(w);
    h.waiter = kNil;
    if (entries_[e].holders == 0 && entries_[e].waiter_head == kNil) destroy(e);
    else grant_waiters(e);  // a semaphore waiter behind it may fit now
  }
  // Moves every hold of `from` to `to` (a resumed session). A shared lock
  // both already hold is kept once.
  void transfer(Holdings& from, ConnId to_conn, Holdings& to);

  // Waiters given their lock since the last call; the caller answers them.
  std::vector<Grant>& grants() { return grants_; }
  std::size_t waiters() const { return waiting_; }

  // Releases every lock in `h` (and drops its queued wait); calls
  // on_release(kind, name) for each lock before its name is freed.
  template <class F>
  void release_all(Holdings& h, F&& on_release) {
    cancel_wait(h, [](LockKind, std::string_view) {});
    while (h.head != kNil) {
      const Hold hold = holds_[h.head];
      const Entry& e = entries_[hold.entry];
      on_release(e.kind, e.name);
      drop_hold(h, h.head);
    }
  }

  // Visits locks of one kind as (name, holders-in-order-taken) in no order.
  template <class F>
  void for_each(LockKind kind, F&& visit) const {
    std::vector<ConnId> holders;
    for (std::uint32_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      if (e.holders == 0 || e.kind != kind) continue;
      holders.clear();
      for (std::uint32_t k = e.first_hold; k != kNil; k = holds_[k].entry_next)
        holders.push_back(holds_[k].conn);
      visit(e.name, holders);
    }
  }

  std::size_t exclusive_locks() const { return live_[0]; }
  std::size_t shared_locks() const { return live_[1]; }
  // Bytes owned by the table: entries, holds, index and name arena.
  std::size_t memory_bytes() const;
  // Index slots looked at by lookups and inserts since construction: grows
  // by about one per operation unless the index is being flooded.
  std::uint64_t probes() const { return probes_; }
  // The longest distance of an entry from its home slot (scans the index).
  std::size_t max_probe() const;

 private:
  struct Entry {
    std::string_view name;           // in arena_; empty view for ""
    std::uint64_t token = 0;         // exclusive: fencing token of the hold
    std::uint32_t hash = 0;
    std::uint32_t first_hold = kNil; // holders in the order they took it
    std::uint32_t last_hold = kNil;
    std::uint32_t holders = 0;       // 0: the slab slot is free
    std::uint32_t next_free = kNil;  // free-list link while the slot is free
    std::uint32_t waiter_head = kNil;  // FIFO of queued waits
    std::uint32_t waiter_tail = kNil;
    std::uint32_t waiter_count = 0;
    LockKind kind = LockKind::Exclusive;
  };
  struct Waiter {
    std::uint32_t entry;
    ConnId conn;
    std::uint32_t limit;
    std::uint32_t prev, next;  // in the entry's queue; next doubles as free link
    Holdings* holdings;
  };
  struct Hold {
    std::uint32_t entry;
    ConnId conn;
    std::uint32_t conn_prev, conn_next;
    std::uint32_t entry_prev, entry_next;
  };

  std::uint32_t hash_of(LockKind kind, std::string_view name) const;
  std::uint32_t find(LockKind kind, std::string_view name, std::uint32_t hash) const;
  std::uint32_t create(LockKind kind, std::string_view name, std::uint32_t hash);
  void destroy(std::uint32_t entry);
  std::uint32_t find_hold(ConnId conn, const Holdings& h, std::uint32_t entry) const;
  void add_hold(ConnId conn, Holdings& h, std::uint32_t entry);
  void drop_hold(Holdings& h, std::uint32_t hold);
  void index_insert(std::uint64_t slot_value);
  void index_erase(std::uint32_t entry);
  void grow_index();
  void rehash(std::size_t slots);
  void maybe_shrink_index();
  void unlink_waiter(std::uint32_t w);
  void grant_waiters(std::uint32_t entry);

  NameArena arena_;
  std::vector<Entry> entries_;
  FreeList<Entry, &Entry::next_free> free_entries_;
  std::vector<Hold> holds_;
  FreeList<Hold, &Hold::conn_next> free_holds_;  // conn_next doubles as free link
  // Slot value: (hash << 32) | (entry + 1); 0 marks an empty slot.
  std::vector<std::uint64_t> index_;
  std::size_t index_used_ = 0;
  mutable std::uint64_t probes_ = 0;
  // SipHash keys, one per kind, so "x" and shared "x" hash independently.
  std::array<unsigned char, 16> keys_[2];
  std::vector<Waiter> waiters_;
  FreeList<Waiter, &Waiter::next> free_waiters_;
  std::size_t waiting_ = 0;
  std::vector<Grant> grants_;
  WaitLimits limits_;
  std::size_t live_[2] = {0, 0};
  std::uint64_t next_token_;
  std::uint64_t token_limit_ = ~std::uint64_t{0};
  TokenReserve* token_reserve_ = nullptr;
};

}  // namespace glockd

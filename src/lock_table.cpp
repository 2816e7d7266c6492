// LockTable implementation: linear-probing index with backward-shift
// deletion (no tombstones), slab-allocated entries and holds.
#include "lock_table.hpp"

#include <sodium/crypto_shorthash.h>

#include <algorithm>
#include <cstring>

namespace glockd {

namespace {
constexpr std::size_t kInitialIndexSlots = 1024;

std::uint64_t siphash(const unsigned char* key, const void* data, std::size_t size) {
  static constexpr unsigned char kNoBytes = 0;  // never pass a null pointer
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, size == 0 ? &kNoBytes : static_cast<const unsigned char*>(data), size,
                   key);
  std::uint64_t h;
  std::memcpy(&h, out, sizeof h);
  return h;
}
}  // namespace

LockTable::LockTable(std::uint64_t first_token, WaitLimits limits, const HashKey& key)
    : index_(kInitialIndexSlots, 0),
      limits_(limits),
      next_token_(first_token == 0 ? 1 : first_token) {
  // One key per kind, derived from `key` by the PRF itself.
  for (unsigned char kind = 0; kind < 2; ++kind) {
    for (unsigned char half = 0; half < 2; ++half) {
      const unsigned char label[2] = {kind, half};
      const std::uint64_t h = siphash(key.bytes.data(), label, sizeof label);
      std::memcpy(keys_[kind].data() + 8 * half, &h, sizeof h);
    }
  }
}

// Safe against hash flooding: SipHash-2-4 is a keyed PRF, and the key is
// drawn from getrandom at start, lives only in this table and is never
// printed, logged or sent. A client that cannot see the key cannot choose
// names that share a home slot any better than by chance, so probe runs
// are as long as for random names: short, since the index stays at most
// half full (create() grows it; maybe_shrink_index() shrinks it only to a
// quarter full). The old hash, unkeyed and invertible, let one client send
// 40,000 names with one hash: 3.7 s of probing against 10 ms.
std::uint32_t LockTable::hash_of(LockKind kind, std::string_view name) const {
  const std::uint64_t h =
      siphash(keys_[static_cast<int>(kind)].data(), name.data(), name.size());
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

std::uint32_t LockTable::find(LockKind kind, std::string_view name,
                              std::uint32_t hash) const {
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    ++probes_;
    const std::uint64_t slot = index_[i];
    if (slot == 0) return kNil;
    if (static_cast<std::uint32_t>(slot >> 32) != hash) continue;
    const std::uint32_t e = static_cast<std::uint32_t>(slot) - 1;
    if (entries_[e].kind == kind && entries_[e].name == name) return e;
  }
}

void LockTable::index_insert(std::uint64_t slot_value) {
  const std::size_t mask = index_.size() - 1;
  std::size_t i = (slot_value >> 32) & mask;
  std::uint64_t looked = 1;
  for (; index_[i] != 0; ++looked) i = (i + 1) & mask;
  index_[i] = slot_value;
  probes_ += looked;
}

void LockTable::grow_index() { rehash(index_.size() * 2); }

// Rebuilds the index with `slots` slots (a power of two), in a new vector
// so that a smaller one really gives its memory back.
void LockTable::rehash(std::size_t slots) {
  std::vector<std::uint64_t> old(slots, 0);
  old.swap(index_);
  const std::uint64_t probes = probes_;  // moving entries is not probing
  for (std::uint64_t v : old)
    if (v != 0) index_insert(v);
  probes_ = probes;
}

// After a flood of locks is gone: an index under 1/8 full halves (at least)
// to a quarter full, so it must lose 1/8 of its slots' worth of entries
// before it shrinks and gain a quarter before it grows back: O(1) amortised.
void LockTable::maybe_shrink_index() {
  if (index_.size() <= kInitialIndexSlots || index_used_ * 8 >= index_.size()) return;
  std::size_t slots = kInitialIndexSlots;
  while (slots < index_used_ * 4) slots *= 2;
  rehash(slots);
}

std::size_t LockTable::max_probe() const {
  const std::size_t mask = index_.size() - 1;
  std::size_t longest = 0;
  for (std::size_t i = 0; i < index_.size(); ++i) {
    if (index_[i] == 0) continue;
    const std::size_t home = (index_[i] >> 32) & mask;
    longest = std::max(longest, ((i - home) & mask) + 1);
  }
  return longest;
}

void LockTable::index_erase(std::uint32_t entry) {
  const std::size_t mask = index_.size() - 1;
  const std::uint64_t want =
      (static_cast<std::uint64_t>(entries_[entry].hash) << 32) | (entry + 1);
  std::size_t i = entries_[entry].hash & mask;
  while (index_[i] != want) i = (i + 1) & mask;
  // Backward shift: pull later members of the probe run into the hole.
  for (std::size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
    const std::uint64_t v = index_[j];
    if (v == 0) break;
    const std::size_t home = (v >> 32) & mask;
    // v may move to i only if i lies cyclically in [home, j).
    if (((j - home) & mask) >= ((j - i) & mask)) {
      index_[i] = v;
      i = j;
    }
  }
  index_[i] = 0;
  --index_used_;
}

std::uint32_t LockTable::create(LockKind kind, std::string_view name, std::uint32_t hash) {
  if ((index_used_ + 1) * 2 > index_.size()) grow_index();
  const std::uint32_t e = free_entries_.take(entries_);
  Entry& entry = entries_[e];
  entry = Entry{};
  entry.name = arena_.store(name);
  entry.hash = hash;
  entry.kind = kind;
  index_insert((static_cast<std::uint64_t>(hash) << 32) | (e + 1));
  ++index_used_;
  ++live_[static_cast<int>(kind)];
  return e;
}

void LockTable::destroy(std::uint32_t e) {
  index_erase(e);
  Entry& entry = entries_[e];
  --live_[static_cast<int>(entry.kind)];
  arena_.release(entry.name);
  entry = Entry{};
  free_entries_.give_back(entry, e);
  maybe_shrink_index();
  free_entries_.maybe_trim(entries_);
}

std::uint32_t LockTable::find_hold(ConnId conn, const Holdings& h, std::uint32_t e) const {
  // Walk whichever list is shorter: the entry's holders or the connection's holds.
  if (entries_[e].holders <= h.total()) {
    for (std::uint32_t k = entries_[e].first_hold; k != kNil; k = holds_[k].entry_next)
      if (holds_[k].conn == conn) return k;
  } else {
    for (std::uint32_t k = h.head; k != kNil; k = holds_[k].conn_next)
      if (holds_[k].entry == e) return k;
  }
  return kNil;
}

void LockTable::add_hold(ConnId conn, Holdings& h, std::uint32_t e) {
  const std::uint32_t k = free_holds_.take(holds_);
  Entry& entry = entries_[e];
  holds_[k] = Hold{e, conn, kNil, h.head, entry.last_hold, kNil};
  if (h.head != kNil) holds_[h.head].conn_prev = k;
  h.head = k;
  if (entry.last_hold != kNil)
    holds_[entry.last_hold].entry_next = k;
  else
    entry.first_hold = k;
  entry.last_hold = k;
  ++entry.holders;
  if (entry.kind == LockKind::Exclusive) {
    ++h.exclusive;
    if (next_token_ >= token_limit_) [[unlikely]]
      token_limit_ = token_reserve_->extend(next_token_);
    entry.token = next_token_++;
  } else {
    ++h.shared;
  }
}

void LockTable::drop_hold(Holdings& h, std::uint32_t k) {
  const Hold hold = holds_[k];
  Entry& entry = entries_[hold.entry];
  if (hold.conn_prev != kNil) holds_[hold.conn_prev].conn_next = hold.conn_next;
  else h.head = hold.conn_next;
  if (hold.conn_next != kNil) holds_[hold.conn_next].conn_prev = hold.conn_prev;
  if (hold.entry_prev != kNil) holds_[hold.entry_prev].entry_next = hold.entry_next;
  else entry.first_hold = hold.entry_next;
  if (hold.entry_next != kNil) holds_[hold.entry_next].entry_prev = hold.entry_prev;
  else entry.last_hold = hold.entry_prev;
  if (entry.kind == LockKind::Exclusive) --h.exclusive;
  else --h.shared;
  free_holds_.give_back(holds_[k], k);
  --entry.holders;
  if (entry.waiter_head != kNil) grant_waiters(hold.entry);
  if (entry.holders == 0 && entry.waiter_head == kNil) destroy(hold.entry);
  free_holds_.maybe_trim(holds_);
}

void LockTable::unlink_waiter(std::uint32_t w) {
  const Waiter waiter = waiters_[w];
  Entry& entry = entries_[waiter.entry];
  if (waiter.prev != kNil) waiters_[waiter.prev].next = waiter.next;
  else entry.waiter_head = waiter.next;
  if (waiter.next != kNil) waiters_[waiter.next].prev = waiter.prev;
  else entry.waiter_tail = waiter.prev;
  --entry.waiter_count;
  --waiting_;
  free_waiters_.give_back(waiters_[w], w);
  free_waiters_.maybe_trim(waiters_);
}

void LockTable::grant_waiters(std::uint32_t e) {
  // FIFO: stop at the first waiter that cannot have the lock yet.
  while (entries_[e].waiter_head != kNil) {
    const std::uint32_t w = entries_[e].waiter_head;
    const Waiter waiter = waiters_[w];
    const Entry& entry = entries_[e];
    const bool fits = entry.kind == LockKind::Exclusive ? entry.holders == 0
                                                        : entry.holders < waiter.limit;
    if (!fits) return;
    unlink_waiter(w);
    waiter.holdings->waiter = kNil;
    add_hold(waiter.conn, *waiter.holdings, e);
    grants_.push_back(Grant{waiter.conn, entries_[e].kind, entries_[e].holders, entries_[e].name});
  }
}

void LockTable::transfer(Holdings& from, ConnId to_conn, Holdings& to) {
  while (from.head != kNil) {
    const std::uint32_t k = from.head;
    const std::uint32_t e = holds_[k].entry;
    if (entries_[e].kind == LockKind::Shared && find_hold(to_conn, to, e) != kNil) {
      drop_hold(from, k);
      continue;
    }
    // Unlink from `from`, relink at the head of `to`; the entry's holder
    // list keeps its place (and order) with the new owner.
    from.head = holds_[k].conn_next;
    if (from.head != kNil) holds_[from.head].conn_prev = kNil;
    holds_[k].conn = to_conn;
    holds_[k].conn_prev = kNil;
    holds_[k].conn_next = to.head;
    if (to.head != kNil) holds_[to.head].conn_prev = k;
    to.head = k;
    if (entries_[e].kind == LockKind::Exclusive) {
      --from.exclusive;
      ++to.exclusive;
    } else {
      --from.shared;
      ++to.shared;
    }
  }
}

LockTable::Waited LockTable::wait(ConnId conn, Holdings& h, std::string_view name,
                                  std::uint32_t limit, bool queue) {
  const LockKind kind = limit == 0 ? LockKind::Exclusive : LockKind::Shared;
  const std::uint32_t hash = hash_of(kind, name);
  std::uint32_t e = find(kind, name, hash);
  if (e == kNil) {
    e = create(kind, name, hash);
    add_hold(conn, h, e);
    return Waited{WaitStatus::Granted, entries_[e].holders};
  }
  if (kind == LockKind::Exclusive) {
    if (holds_[entries_[e].first_hold].conn == conn) return Waited{WaitStatus::Granted, 1};
  } else {
    if (find_hold(conn, h, e) != kNil) return Waited{WaitStatus::Granted, entries_[e].holders};
    if (entries_[e].waiter_head == kNil && entries_[e].holders < limit) {
      add_hold(conn, h, e);
      return Waited{WaitStatus::Granted, entries_[e].holders};
    }
  }
  if (!queue || h.waiter != kNil) return Waited{WaitStatus::Refused, 0};
  if (waiting_ >= limits_.total || entries_[e].waiter_count >= limits_.per_lock)
    return Waited{WaitStatus::Full, 0};
  const std::uint32_t w = free_waiters_.take(waiters_);
  Entry& entry = entries_[e];
  waiters_[w] = Waiter{e, conn, limit, entry.waiter_tail, kNil, &h};
  if (entry.waiter_tail != kNil) waiters_[entry.waiter_tail].next = w;
  else entry.waiter_head = w;
  entry.waiter_tail = w;
  ++entry.waiter_count;
  ++waiting_;
  h.waiter = w;
  return Waited{WaitStatus::Queued, 0};
}

LockTable::Acquired LockTable::acquire(ConnId conn, Holdings& h, std::string_view name) {
  const std::uint32_t hash = hash_of(LockKind::Exclusive, name);
  std::uint32_t e = find(LockKind::Exclusive, name, hash);
  if (e != kNil) {
    const bool mine = holds_[entries_[e].first_hold].conn == conn;
    return Acquired{mine, false, mine ? 1u : 0u};
  }
  e = create(LockKind::Exclusive, name, hash);
  add_hold(conn, h, e);
  return Acquired{true, true, 1};
}

bool LockTable::release(ConnId conn, Holdings& h, std::string_view name) {
  const std::uint32_t e = find(LockKind::Exclusive, name, hash_of(LockKind::Exclusive, name));
  if (e == kNil) return false;
  const std::uint32_t k = entries_[e].first_hold;
  if (holds_[k].conn != conn) return false;
  drop_hold(h, k);
  return true;
}

bool LockTable::is_locked(std::string_view name) const {
  return find(LockKind::Exclusive, name, hash_of(LockKind::Exclusive, name)) != kNil;
}

ConnId LockTable::holder(std::string_view name) const {
  const std::uint32_t e = find(LockKind::Exclusive, name, hash_of(LockKind::Exclusive, name));
  return e == kNil ? kNil : holds_[entries_[e].first_hold].conn;
}

bool LockTable::holds(ConnId conn, const Holdings& h, LockKind kind,
                      std::string_view name) const {
  const std::uint32_t e = find(kind, name, hash_of(kind, name));
  return e != kNil && find_hold(conn, h, e) != kNil;
}

std::uint64_t LockTable::token(ConnId conn, std::string_view name) const {
  const std::uint32_t e = find(LockKind::Exclusive, name, hash_of(LockKind::Exclusive, name));
  if (e == kNil || holds_[entries_[e].first_hold].conn != conn) return 0;
  return entries_[e].token;
}

LockTable::Acquired LockTable::acquire_shared(ConnId conn, Holdings& h, std::string_view name) {
  const std::uint32_t hash = hash_of(LockKind::Shared, name);
  std::uint32_t e = find(LockKind::Shared, name, hash);
  if (e == kNil) {
    e = create(LockKind::Shared, name, hash);
  } else if (find_hold(conn, h, e) != kNil) {
    return Acquired{true, false, entries_[e].holders};
  }
  add_hold(conn, h, e);
  return Acquired{true, true, entries_[e].holders};
}

bool LockTable::release_shared(ConnId conn, Holdings& h, std::string_view name) {
  const std::uint32_t e = find(LockKind::Shared, name, hash_of(LockKind::Shared, name));
  if (e == kNil) return false;
  const std::uint32_t k = find_hold(conn, h, e);
  if (k == kNil) return false;
  drop_hold(h, k);
  return true;
}

std::uint32_t LockTable::shared_holders(std::string_view name) const {
  const std::uint32_t e = find(LockKind::Shared, name, hash_of(LockKind::Shared, name));
  return e == kNil ? 0 : entries_[e].holders;
}

std::size_t LockTable::memory_bytes() const {
  return entries_.capacity() * sizeof(Entry) + holds_.capacity() * sizeof(Hold) +
         waiters_.capacity() * sizeof(Waiter) +
         index_.capacity() * sizeof(std::uint64_t) + arena_.bytes_reserved();
}

}  // namespace glockd

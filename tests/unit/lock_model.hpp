// LockModel: a plain reference for LockTable, written to be obviously right
// rather than fast: per kind, a std::map from name to the holders in the
// order they took the lock and a FIFO of waiters. The model check
// (lock_model_check.hpp) runs both side by side and compares what they say.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lock_table.hpp"

namespace glockd::model {

using Key = std::pair<LockKind, std::string>;

struct Granted {
  ConnId conn;
  LockKind kind;
  std::uint32_t holders;
  std::string name;
};

class LockModel {
 public:
  struct Waiter {
    ConnId conn;
    std::uint32_t limit;
  };
  struct Lock {
    std::vector<ConnId> holders;  // in the order they took it
    std::deque<Waiter> queue;     // first come, first served
    // Which exclusive acquisition this is (1, 2, ...): tokens must grow with
    // it. A transfer keeps it: the hold is the same one under a new owner.
    std::uint64_t serial = 0;
  };
  struct Counts {
    std::uint32_t exclusive = 0;
    std::uint32_t shared = 0;
  };

  explicit LockModel(WaitLimits limits) : limits_(limits) {}

  LockTable::Acquired acquire(ConnId c, const std::string& name) {
    const Key k{LockKind::Exclusive, name};
    Lock& l = slot(k);
    if (l.holders.empty()) {
      add_holder(k, l, c);
      return {true, true, 1};
    }
    const bool mine = l.holders.front() == c;
    return {mine, false, mine ? 1u : 0u};
  }

  bool release(ConnId c, const std::string& name) {
    return drop(c, {LockKind::Exclusive, name});
  }

  LockTable::Acquired acquire_shared(ConnId c, const std::string& name) {
    const Key k{LockKind::Shared, name};
    Lock& l = slot(k);
    if (holds(l, c)) return {true, false, size(l)};
    add_holder(k, l, c);  // sg does not queue, and does not wait behind a queue
    return {true, true, size(l)};
  }

  bool release_shared(ConnId c, const std::string& name) {
    return drop(c, {LockKind::Shared, name});
  }

  // w (limit 0) and sw (limit N): take it now if it is free (or, for a
  // semaphore, below the limit with nobody queued ahead), else queue.
  LockTable::Waited wait(ConnId c, const std::string& name, std::uint32_t limit, bool queue) {
    const Key k{limit == 0 ? LockKind::Exclusive : LockKind::Shared, name};
    Lock& l = slot(k);
    if (holds(l, c)) return {LockTable::WaitStatus::Granted, size(l)};
    if (l.queue.empty() && fits(k.first, l, limit)) {
      add_holder(k, l, c);
      return {LockTable::WaitStatus::Granted, size(l)};
    }
    if (!queue || waiting_.count(c) != 0) {
      tidy(k);
      return {LockTable::WaitStatus::Refused, 0};
    }
    if (waiting_.size() >= limits_.total || l.queue.size() >= limits_.per_lock) {
      tidy(k);
      return {LockTable::WaitStatus::Full, 0};
    }
    l.queue.push_back({c, limit});
    waiting_[c] = k;
    return {LockTable::WaitStatus::Queued, 0};
  }

  // A time-out, or the waiting side going away: leaves the queue. Returns
  // what it waited for.
  std::optional<Key> cancel_wait(ConnId c) {
    auto it = waiting_.find(c);
    if (it == waiting_.end()) return std::nullopt;
    const Key k = it->second;
    waiting_.erase(it);
    auto& q = at(k).queue;
    q.erase(std::find_if(q.begin(), q.end(), [&](const Waiter& w) { return w.conn == c; }));
    serve(k);  // whoever queued behind it may fit now
    return k;
  }

  // Disconnect (or `ra`): drop the wait, then every hold. Returns the locks
  // released.
  std::vector<Key> release_all(ConnId c) {
    cancel_wait(c);
    std::vector<Key> released = held_by(c);
    for (const Key& k : released) drop(c, k);
    return released;
  }

  // A resumed session: `to` takes over every hold of `from`, in place in
  // the holder order; a shared lock both hold is kept once (by `to`).
  void transfer(ConnId from, ConnId to) {
    for (const Key& k : held_by(from)) {
      Lock& l = at(k);
      if (k.first == LockKind::Shared && holds(l, to)) {
        drop(from, k);
        continue;
      }
      *std::find(l.holders.begin(), l.holders.end(), from) = to;
      move_count(k.first, from, to);
    }
  }

  const Lock* find(LockKind kind, const std::string& name) const {
    const auto& m = locks(kind);
    auto it = m.find(name);
    return it == m.end() ? nullptr : &it->second;
  }
  ConnId holder(const std::string& name) const {
    const Lock* l = find(LockKind::Exclusive, name);
    return l ? l->holders.front() : kNil;
  }
  std::uint32_t shared_holders(const std::string& name) const {
    const Lock* l = find(LockKind::Shared, name);
    return l ? size(*l) : 0;
  }
  std::size_t locks_of(LockKind kind) const { return locks(kind).size(); }
  std::size_t waiters() const { return waiting_.size(); }
  const std::map<ConnId, Key>& waiting() const { return waiting_; }
  bool is_waiting(ConnId c) const { return waiting_.count(c) != 0; }
  Counts counts(ConnId c) const {
    auto it = counts_.find(c);
    return it == counts_.end() ? Counts{} : it->second;
  }
  const std::map<std::string, Lock>& locks(LockKind kind) const {
    return locks_[static_cast<int>(kind)];
  }
  std::vector<Granted>& grants() { return grants_; }
  std::vector<Key> held_by(ConnId c) const {
    std::vector<Key> out;
    for (LockKind kind : {LockKind::Exclusive, LockKind::Shared})
      for (const auto& [name, l] : locks(kind))
        if (holds(l, c)) out.push_back({kind, name});
    return out;
  }
  // The model's own invariants: no lock without holders, nobody both
  // holding and waiting for the same lock, the counters match the holders.
  bool consistent() const {
    std::map<ConnId, Counts> recount;
    std::size_t queued = 0;
    for (LockKind kind : {LockKind::Exclusive, LockKind::Shared}) {
      for (const auto& [name, l] : locks(kind)) {
        if (l.holders.empty()) return false;
        for (ConnId c : l.holders) {
          auto& n = recount[c];
          (kind == LockKind::Exclusive ? n.exclusive : n.shared)++;
        }
        for (const Waiter& w : l.queue) {
          auto it = waiting_.find(w.conn);
          if (holds(l, w.conn) || it == waiting_.end() || it->second != Key{kind, name})
            return false;
        }
        queued += l.queue.size();
      }
    }
    if (queued != waiting_.size()) return false;
    for (const auto& [c, n] : counts_) {
      const Counts r = recount[c];
      if (r.exclusive != n.exclusive || r.shared != n.shared) return false;
    }
    return recount.size() == counts_.size();
  }

 private:
  static bool holds(const Lock& l, ConnId c) {
    return std::find(l.holders.begin(), l.holders.end(), c) != l.holders.end();
  }
  static std::uint32_t size(const Lock& l) { return static_cast<std::uint32_t>(l.holders.size()); }
  static bool fits(LockKind kind, const Lock& l, std::uint32_t limit) {
    return kind == LockKind::Exclusive ? l.holders.empty() : l.holders.size() < limit;
  }

  void add_holder(const Key& k, Lock& l, ConnId c) {
    l.holders.push_back(c);
    if (k.first == LockKind::Exclusive) l.serial = ++exclusive_acquisitions_;
    auto& n = counts_[c];
    (k.first == LockKind::Exclusive ? n.exclusive : n.shared)++;
  }
  void move_count(LockKind kind, ConnId from, ConnId to) {
    (kind == LockKind::Exclusive ? counts_[from].exclusive : counts_[from].shared)--;
    (kind == LockKind::Exclusive ? counts_[to].exclusive : counts_[to].shared)++;
  }

  bool drop(ConnId c, const Key& k) {
    auto& m = map_of(k.first);
    auto it = m.find(k.second);
    if (it == m.end()) return false;
    auto& hs = it->second.holders;
    auto pos = std::find(hs.begin(), hs.end(), c);
    if (pos == hs.end()) return false;
    hs.erase(pos);
    (k.first == LockKind::Exclusive ? counts_[c].exclusive : counts_[c].shared)--;
    serve(k);
    return true;
  }

  // Hands the lock to queued waiters from the front while the first fits.
  void serve(const Key& k) {
    Lock& l = at(k);
    while (!l.queue.empty() && fits(k.first, l, l.queue.front().limit)) {
      const Waiter w = l.queue.front();
      l.queue.pop_front();
      waiting_.erase(w.conn);
      add_holder(k, l, w.conn);
      grants_.push_back({w.conn, k.first, size(l), k.second});
    }
    tidy(k);
  }

  void tidy(const Key& k) {
    auto& m = map_of(k.first);
    auto it = m.find(k.second);
    if (it != m.end() && it->second.holders.empty() && it->second.queue.empty()) m.erase(it);
  }

  std::map<std::string, Lock>& map_of(LockKind kind) { return locks_[static_cast<int>(kind)]; }
  Lock& slot(const Key& k) { return map_of(k.first)[k.second]; }  // creates it
  Lock& at(const Key& k) { return map_of(k.first).at(k.second); }

  WaitLimits limits_;
  std::map<std::string, Lock> locks_[2];  // by LockKind: exclusive, shared
  std::map<ConnId, Key> waiting_;  // at most one queued wait per connection
  std::map<ConnId, Counts> counts_;
  std::vector<Granted> grants_;
  std::uint64_t exclusive_acquisitions_ = 0;
};

}  // namespace glockd::model

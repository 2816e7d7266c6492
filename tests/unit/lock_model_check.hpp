// ModelCheck: drives a LockTable and a LockModel with the same random
// operations, issued the way the daemon issues them, and compares everything
// the table lets a caller observe after every step.
//
// The daemon's rules it keeps: a connection has at most one queued wait and
// sends nothing else while it waits (its requests queue behind the wait);
// a time-out is the waiting side's cancel_wait; a disconnect is release_all,
// or with a grace period cancel_wait and the holds kept (detached) until a
// resume (transfer to an open connection) or the end of the grace
// (release_all); grants are collected by the caller after every call.
#pragma once

#include <algorithm>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "lock_model.hpp"

namespace glockd::model {

struct CheckConfig {
  std::uint32_t seed = 1;
  ConnId conns = 8;
  std::uint32_t hot_names = 6;    // hot_percent of names come from these...
  std::uint32_t names = 6;        // ...the rest from all of these
  std::uint32_t hot_percent = 100;
  // Of the operations on an open connection: `ra`, and disconnects.
  std::uint32_t release_all_per_mille = 30;
  std::uint32_t disconnect_per_mille = 40;
  std::uint32_t full_every = 1;   // compare every lock every this many steps
  WaitLimits limits{3, 5};
  std::uint64_t first_token = 1000;
};

// How often each interesting path was taken: a check that never queues or
// never resumes proves nothing, so the tests require each to happen.
struct Coverage {
  std::size_t queued = 0, refused = 0, exclusive_grants = 0, shared_grants = 0,
              timeouts = 0, disconnects = 0, detached = 0, resumes = 0, expiries = 0,
              shared_kept_once = 0, most_locks = 0;
};

class ModelCheck {
 public:
  explicit ModelCheck(const CheckConfig& cfg)
      : cfg_(cfg), table_(cfg.first_token, cfg.limits), model_(cfg.limits),
        h_(cfg.conns), detached_(cfg.conns, false), rng_(cfg.seed),
        last_token_(cfg.first_token - 1) {
    for (std::uint32_t i = 0; i < cfg.names; ++i) names_.push_back("n" + std::to_string(i));
  }

  // One random operation on both; returns the first difference found, or "".
  std::string step() {
    op_.clear();
    err_.clear();
    touched_.clear();
    const ConnId c = rng_() % cfg_.conns;
    if (detached_[c]) end_detached(c);
    else if (model_.is_waiting(c) && rng_() % 2 == 0) end_wait(c);
    else if (const ConnId o = model_.is_waiting(c) ? open_idle(c) : c; o != kNil) request(o);
    else end_wait(c);
    compare_step(++steps_ % cfg_.full_every == 0);
    return err_;
  }
  const std::string& last_op() const { return op_; }
  const Coverage& coverage() const { return cov_; }

 private:
  const std::string& pick_name() {
    const bool hot = rng_() % 100 < cfg_.hot_percent;
    return names_[rng_() % (hot ? cfg_.hot_names : cfg_.names)];
  }
  // Names are "n<index>": the set of names to compare is kept as indexes.
  void touch(const std::string& name) {
    touched_.insert(static_cast<std::uint32_t>(std::stoul(name.substr(1))));
  }
  // A random open connection that is not waiting, other than `not_this`.
  ConnId open_idle(ConnId not_this) {
    const ConnId start = rng_() % cfg_.conns;
    for (ConnId i = 0; i < cfg_.conns; ++i) {
      const ConnId o = (start + i) % cfg_.conns;
      if (o != not_this && !detached_[o] && !model_.is_waiting(o)) return o;
    }
    return kNil;
  }
  static void put(std::string& out, std::string_view v) { out += v; }
  static void put(std::string& out, const char* v) { out += v; }  // not the bool one
  static void put(std::string& out, bool v) { out += v ? "true" : "false"; }
  template <class N, class = std::enable_if_t<std::is_integral_v<N>>>
  static void put(std::string& out, N v) { out += std::to_string(v); }
  template <class... A>
  void note(const A&... parts) {
    (put(op_, parts), ...);
    op_ += "; ";
  }
  // Compares one observation. The description is only built on a mismatch:
  // this runs hundreds of times a step.
  template <class T, class U, class... What>
  void same(const T& table, const U& model, const What&... what) {
    if (!err_.empty() || table == static_cast<T>(model)) return;
    (put(err_, what), ...);
    err_ += ": table says ";
    put(err_, table);
    err_ += ", model says ";
    put(err_, static_cast<T>(model));
  }
  static std::string describe(const std::vector<Key>& keys) {
    std::string s;
    for (const auto& [kind, name] : keys) s += (kind == LockKind::Shared ? "s:" : "x:") + name + " ";
    return s;
  }

  void request(ConnId c) {
    const std::uint32_t r = rng_() % 1000;
    if (r < cfg_.disconnect_per_mille) return disconnect(c, rng_() % 2 == 0);
    if (r < cfg_.disconnect_per_mille + cfg_.release_all_per_mille) {
      note("conn ", c, " release_all (ra)");
      return release_all(c);
    }
    const std::string& n = pick_name();
    touch(n);
    switch (rng_() % 9) {
      case 0:
      case 1: {
        note("conn ", c, " acquire ", n);
        const auto got = table_.acquire(c, h_[c], n);
        const auto want = model_.acquire(c, n);
        same(got.ok, want.ok, "acquire ok");
        same(got.newly, want.newly, "acquire newly");
        same(got.holders, want.holders, "acquire holders");
        return;
      }
      case 2:
        note("conn ", c, " release ", n);
        return same(table_.release(c, h_[c], n), model_.release(c, n), "release");
      case 3: {
        note("conn ", c, " acquire_shared ", n);
        const auto got = table_.acquire_shared(c, h_[c], n);
        const auto want = model_.acquire_shared(c, n);
        same(got.ok, want.ok, "acquire_shared ok");
        same(got.newly, want.newly, "acquire_shared newly");
        same(got.holders, want.holders, "acquire_shared holders");
        return;
      }
      case 4:
        note("conn ", c, " release_shared ", n);
        return same(table_.release_shared(c, h_[c], n), model_.release_shared(c, n),
                    "release_shared");
      default: {
        const std::uint32_t limit = rng_() % 10 < 5 ? 0 : 1 + rng_() % 3;
        const bool queue = rng_() % 5 != 0;
        note("conn ", c, " wait ", n, " limit ", limit, queue ? " queue" : " no-queue");
        const auto got = table_.wait(c, h_[c], n, limit, queue);
        const auto want = model_.wait(c, n, limit, queue);
        same(static_cast<int>(got.status), static_cast<int>(want.status), "wait status");
        same(got.holders, want.holders, "wait holders");
        cov_.queued += want.status == LockTable::WaitStatus::Queued;
        cov_.refused += want.status == LockTable::WaitStatus::Full;
        return;
      }
    }
  }

  void release_all(ConnId c) {
    std::vector<Key> seen;
    table_.release_all(h_[c], [&](LockKind kind, std::string_view name) {
      seen.push_back({kind, std::string(name)});
    });
    std::vector<Key> want = model_.release_all(c);
    std::sort(seen.begin(), seen.end());
    std::sort(want.begin(), want.end());
    same(describe(seen), describe(want), "locks release_all visited");
    for (const Key& k : want) touch(k.second);
  }

  // Time-out (or the first half of a disconnect): the waiting side leaves.
  void cancel_wait(ConnId c) {
    std::vector<Key> seen;
    table_.cancel_wait(h_[c], [&](LockKind kind, std::string_view name) {
      seen.push_back({kind, std::string(name)});
    });
    std::vector<Key> want;
    if (auto k = model_.cancel_wait(c)) want.push_back(*k);
    same(describe(seen), describe(want), "cancel_wait visited");
    for (const Key& k : want) touch(k.second);
  }

  void disconnect(ConnId c, bool grace) {
    ++cov_.disconnects;
    if (!grace) {
      note("conn ", c, " disconnects");
      return release_all(c);
    }
    note("conn ", c, " disconnects with grace");
    cancel_wait(c);
    const auto n = model_.counts(c);
    detached_[c] = n.exclusive + n.shared > 0;  // nothing held: nothing kept
    cov_.detached += detached_[c];
  }

  void end_wait(ConnId c) {
    const std::uint32_t r = rng_() % 10;
    if (r < 7) {
      note("conn ", c, " wait times out");
      ++cov_.timeouts;
      return cancel_wait(c);
    }
    disconnect(c, r == 9);
  }

  void end_detached(ConnId c) {
    detached_[c] = false;  // the slot is free again either way
    const ConnId to = rng_() % 4 == 0 ? kNil : open_idle(c);
    if (to == kNil) {
      note("conn ", c, " grace ends");
      ++cov_.expiries;
      return release_all(c);
    }
    note("conn ", to, " resumes conn ", c);
    ++cov_.resumes;
    const std::vector<Key> moved = model_.held_by(c);
    for (const Key& k : moved) {
      touch(k.second);
      const LockModel::Lock* l = model_.find(k.first, k.second);
      const auto& hs = l->holders;
      cov_.shared_kept_once += std::find(hs.begin(), hs.end(), to) != hs.end();
    }
    table_.transfer(h_[c], to, h_[to]);
    model_.transfer(c, to);
    const Holdings& from = h_[c];
    same(from.head == kNil && from.waiter == kNil && from.total() == 0, true,
         "transfer left the old holdings empty");
  }

  void compare_grants() {
    struct G {
      Key key;
      std::string text;
      bool operator<(const G& o) const { return key < o.key; }
    };
    auto text = [](ConnId c, LockKind k, std::uint32_t n, std::string_view name) {
      std::string t;
      put(t, "conn ");
      put(t, c);
      put(t, k == LockKind::Shared ? " s:" : " x:");
      put(t, name);
      put(t, " holders ");
      put(t, n);
      put(t, "; ");
      return t;
    };
    std::vector<G> got, want;
    for (const Grant& g : table_.grants())
      got.push_back({{g.kind, std::string(g.name)}, text(g.conn, g.kind, g.holders, g.name)});
    for (const Granted& g : model_.grants()) {
      want.push_back({{g.kind, g.name}, text(g.conn, g.kind, g.holders, g.name)});
      touch(g.name);
      (g.kind == LockKind::Shared ? cov_.shared_grants : cov_.exclusive_grants)++;
    }
    table_.grants().clear();
    model_.grants().clear();
    // One call may grant several locks (release_all, transfer); their order
    // among locks is not promised, their order for one lock is (FIFO).
    std::stable_sort(got.begin(), got.end());
    std::stable_sort(want.begin(), want.end());
    std::string g, w;
    for (const G& x : got) g += x.text;
    for (const G& x : want) w += x.text;
    same(g, w, "grants");
  }

  // After every step: the answers of the call (done by the caller), the
  // grants, the counters, every connection's Holdings and every name the
  // step touched; with `full`, every lock and name there is.
  void compare_step(bool full) {
    compare_grants();
    same(table_.exclusive_locks(), model_.locks_of(LockKind::Exclusive), "exclusive_locks");
    same(table_.shared_locks(), model_.locks_of(LockKind::Shared), "shared_locks");
    same(table_.waiters(), model_.waiters(), "waiters");
    cov_.most_locks = std::max(cov_.most_locks, table_.exclusive_locks() + table_.shared_locks());
    for (ConnId c = 0; c < cfg_.conns; ++c) {
      const auto n = model_.counts(c);
      same(h_[c].exclusive, n.exclusive, "conn ", c, " Holdings::exclusive");
      same(h_[c].shared, n.shared, "conn ", c, " Holdings::shared");
      same(h_[c].waiter != kNil, model_.is_waiting(c), "conn ", c, " Holdings::waiter set");
    }
    if (full) {
      compare_holders();
      for (LockKind kind : {LockKind::Exclusive, LockKind::Shared})
        for (const auto& kv : model_.locks(kind)) touch(kv.first);
      if (cfg_.names <= 64)
        for (std::uint32_t i = 0; i < cfg_.names; ++i) touched_.insert(i);
    }
    step_tokens_.clear();
    for (std::uint32_t i : touched_) compare_name(names_[i]);
    for (std::uint64_t t : step_tokens_) last_token_ = std::max(last_token_, t);
  }

  // Everything the table answers about one name.
  void compare_name(const std::string& n) {
    same(table_.is_locked(n), model_.find(LockKind::Exclusive, n) != nullptr, "is_locked ", n);
    same(table_.holder(n), model_.holder(n), "holder ", n);
    same(table_.shared_holders(n), model_.shared_holders(n), "shared_holders ", n);
    const LockModel::Lock* l = model_.find(LockKind::Exclusive, n);
    for (ConnId c = 0; c < cfg_.conns; ++c) {
      const std::uint64_t t = table_.token(c, n);
      if (l == nullptr || l->holders.front() != c) {
        same(t, 0u, "token of conn ", c, " (not the holder) on ", n);
        continue;
      }
      auto& [serial, token] = tokens_[n];
      if (serial == l->serial) {  // the same hold as before: the same token
        same(t, token, "token of ", n, " (unchanged hold)");
        continue;
      }
      // A new exclusive acquisition: above every token issued in an earlier
      // step, and distinct from those issued in this one.
      same(t > last_token_ && step_tokens_.insert(t).second, true,
           "token ", t, " of ", n, " grows (last ", last_token_, ")");
      serial = l->serial;
      token = t;
    }
  }

  // Every lock's holders, in the order they took it.
  void compare_holders() {
    if (steps_ % 64 == 0) same(model_.consistent(), true, "model invariants (a bug in the test)");
    for (LockKind kind : {LockKind::Exclusive, LockKind::Shared}) {
      std::string got, want;
      std::map<std::string_view, std::string> by_name;  // for_each visits in no order
      table_.for_each(kind, [&](std::string_view name, const std::vector<ConnId>& holders) {
        std::string& line = by_name[name];  // the view outlives the call: no change in between
        for (ConnId c : holders) put(line, c), line += ' ';
      });
      for (const auto& [name, line] : by_name) got += std::string(name) + ": " + line + "\n";
      for (const auto& [name, l] : model_.locks(kind)) {
        want += name + ": ";
        for (ConnId c : l.holders) put(want, c), want += ' ';
        want += "\n";
      }
      same(got, want, kind == LockKind::Shared ? "shared" : "exclusive", " holders in order");
    }
  }

  CheckConfig cfg_;
  LockTable table_;
  LockModel model_;
  std::vector<Holdings> h_;  // sized once: the table keeps pointers to waiters' Holdings
  std::vector<bool> detached_;
  std::mt19937 rng_;
  std::uint64_t steps_ = 0;
  std::string op_, err_;
  std::vector<std::string> names_;
  std::set<std::uint32_t> touched_;  // indexes into names_
  // Per exclusive name: the model's serial of the hold and the token seen.
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> tokens_;
  std::set<std::uint64_t> step_tokens_;
  std::uint64_t last_token_;
  Coverage cov_;
};

}  // namespace glockd::model

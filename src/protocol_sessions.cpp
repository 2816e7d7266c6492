// Protocol, Part 2: waiting (w, sw) and what happens to a connection's
// locks when it goes (orphaned, or kept for a grace period and resumed).
#include <algorithm>
#include <cassert>

#include "protocol.hpp"
#include "protocol_internal.hpp"

namespace glockd {

using namespace protocol_detail;

Outcome Protocol::wait(Session& s, Command cmd, std::string_view args, std::string& out) {
  std::uint64_t limit = 0;
  if (cmd == Command::sw) {
    auto [word, rest] = split_word(args);
    if (!parse_number(word, 1, 0xffffffffu, limit)) {
      out.append("0 Bad Request: sw needs LIMIT MS NAME with LIMIT a number from 1 to 4294967295\n");
      return {};
    }
    args = rest;
  }
  auto [ms_text, name] = split_word(args);
  std::uint64_t ms = 0;
  if (!parse_number(ms_text, 0, kMaxWaitMs, ms)) {
    out.append(cmd == Command::w
                   ? "0 Bad Request: w needs MS NAME with MS a number from 0 to 2147483647\n"
                   : "0 Bad Request: sw needs LIMIT MS NAME with MS a number from 0 to 2147483647\n");
    return {};
  }
  if (growth_refused(s) != Refusal::None) {
    if (const Refusal r = refuse_lock(s, cmd, name, out); r != Refusal::None)
      return Outcome{.refused = r};
  }
  const auto got = table_.wait(s.id, s.holdings, name, static_cast<std::uint32_t>(limit), ms > 0);
  const bool shared = cmd == Command::sw;
  switch (got.status) {
    case LockTable::WaitStatus::Granted:
      if (events_) events_->obtained(s.id, shared ? LockKind::Shared : LockKind::Exclusive, name);
      if (shared) answer_n(out, got.holders, " Shared Lock Get Success: ", name);
      else answer(out, "1 Lock Get Success: ", name);
      return {};
    case LockTable::WaitStatus::Refused:
    case LockTable::WaitStatus::Full:
      if (shared) answer(out, "0 Shared Lock Get Failure: ", name);
      else answer(out, "0 Lock Get Failure: ", name);
      if (got.status == LockTable::WaitStatus::Refused) return {};
      ++stats_.waiter_refusals;
      return Outcome{.refused = Refusal::WaiterLimit};
    case LockTable::WaitStatus::Queued:
      break;
  }
  return Outcome{.wait_ms = static_cast<std::uint32_t>(ms), .blocked = true};
}

void Protocol::answer_grant(const Grant& g, std::string& out) {
  if (events_) events_->obtained(g.conn, g.kind, g.name);
  if (g.kind == LockKind::Shared) answer_n(out, g.holders, " Shared Lock Get Success: ", g.name);
  else answer(out, "1 Lock Get Success: ", g.name);
}

Outcome Protocol::expire_wait(Session& s, std::string& out) {
  table_.cancel_wait(s.holdings, [&](LockKind kind, std::string_view name) {
    if (kind == LockKind::Shared) answer(out, "0 Shared Lock Get Failure: ", name);
    else answer(out, "0 Lock Get Failure: ", name);
  });
  return {};  // a semaphore waiter behind it may have been granted
}

void Protocol::orphan_all(Session& s) {
  table_.release_all(s.holdings, [&](LockKind kind, std::string_view name) {
    if (kind == LockKind::Exclusive) ++stats_.orphans;
    else ++stats_.shared_orphans;
    if (events_) events_->orphaned(s.id, kind, name);
  });
  if (auto it = conn_token_.find(s.id); it != conn_token_.end()) {
    token_conn_.erase(it->second);
    conn_token_.erase(it);
  }
}

Outcome Protocol::grace(Session& s, std::string_view ms_text, std::string& out) {
  std::uint64_t ms = 0;
  if (!parse_number(ms_text, 0, kMaxGraceMs, ms)) {
    out.append("0 Bad Request: grace needs MS, a number from 0 to 600000\n");
    return {};
  }
  if (ms == 0) {
    drop_reservation(s);
  } else if (s.grace_ms == 0) {
    if (budget_ != nullptr && budget_->full()) return refuse_memory(out);
    if (sessions_reserved_ >= max_sessions_) {
      ++stats_.sessions_refused;
      out.append("0 Bad Request: too many sessions\n");
      return Outcome{.refused = Refusal::TooManySessions};
    }
    ++sessions_reserved_;
  }
  s.grace_ms = static_cast<std::uint32_t>(ms);
  out.append("1 Grace Set: ");
  append_decimal(out, ms);
  out.push_back('\n');
  return {};
}

Outcome Protocol::session(Session& s, std::string& out) {
  auto it = conn_token_.find(s.id);
  if (it == conn_token_.end()) {
    if (budget_ != nullptr && budget_->full()) return refuse_memory(out);
    int error = 0;
    std::string token = tokens_(error);
    if (token.empty()) {
      ++stats_.tokens_failed;
      out.append("0 Bad Request: cannot make a session token (the kernel gave no random bytes)\n");
      return Outcome{.error = static_cast<std::uint16_t>(error), .refused = Refusal::NoToken};
    }
    token_conn_.emplace(token, s.id);
    it = conn_token_.emplace(s.id, std::move(token)).first;
  }
  out.append("1 Session: ");
  out.append(it->second);
  out.push_back('\n');
  return {};
}

void Protocol::drop_reservation(Session& s) {
  if (s.grace_ms == 0) return;
  s.grace_ms = 0;
  --sessions_reserved_;
}

Outcome Protocol::disconnect(Session& s) {
  registry_.drop(s.id);
  table_.cancel_wait(s.holdings, [](LockKind, std::string_view) {});
  if (s.grace_ms > 0 && s.holdings.total() > 0) {
    s.kept = true;
    return Outcome{.kept = true};
  }
  drop_reservation(s);
  orphan_all(s);
  return {};
}

Outcome Protocol::expire_detached(Session& s) {
  assert(s.kept);
  s.kept = false;
  drop_reservation(s);
  orphan_all(s);
  return {};
}

Outcome Protocol::resume(Session& s, std::string_view token, std::string& out) {
  auto it = token_conn_.find(std::string(token));
  Session* old = it == token_conn_.end() || it->second == s.id ? nullptr : sessions_[it->second];
  if (old == nullptr || !old->kept) {
    out.append("0 Resume Failure\n");
    return {};
  }
  return take_over(s, *old, out);
}

Outcome Protocol::take_over(Session& s, Session& old, std::string& out) {
  const std::uint32_t ex = old.holdings.exclusive;
  const std::uint32_t sh = old.holdings.shared;
  table_.transfer(old.holdings, s.id, s.holdings);
  // The token now names this connection's locks, and so does the grace.
  const ConnId from = old.id;
  std::string moved = std::move(conn_token_[from]);
  conn_token_.erase(from);
  token_conn_[moved] = s.id;
  if (auto mine = conn_token_.find(s.id); mine != conn_token_.end()) {
    token_conn_.erase(mine->second);
    mine->second = std::move(moved);
  } else {
    conn_token_.emplace(s.id, std::move(moved));
  }
  // The old session's slot under --max-sessions passes to this connection,
  // which gives back its own if it had one.
  const std::uint32_t grace_ms = std::max(s.grace_ms, old.grace_ms);
  drop_reservation(s);
  s.grace_ms = grace_ms;
  old.grace_ms = 0;
  old.kept = false;
  out.append("1 Resume Success: ");
  append_decimal(out, ex);
  out.push_back(' ');
  append_decimal(out, sh);
  out.push_back('\n');
  return Outcome{.taken_over = from};
}

}  // namespace glockd

// Protocol: parses one request line and answers it from the LockTable.
// Pure: no sockets, no clock, no logging except through the optional
// Events sink. Everything in docs/PROTOCOL.md sections 0-2 is decided here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "budget.hpp"
#include "lock_table.hpp"
#include "registry.hpp"

namespace glockd {

enum class Command : std::uint8_t {
  // Part 1, in the order of their q keys.
  d, dump, g, i, iam, me, q, r, sd, sg, si, sr, who,
  // Part 2.
  t, ra, w, sw, grace, session, resume,
  kCount
};
inline constexpr std::size_t kCommandCount = static_cast<std::size_t>(Command::kCount);
std::string_view command_name(Command c);
// Appends n in decimal (answers are built without allocation).
void append_decimal(std::string& out, std::uint64_t n);

struct Stats {
  std::array<std::uint64_t, kCommandCount> commands{};
  std::uint64_t invalid_commands = 0;
  std::uint64_t orphans = 0;
  std::uint64_t shared_orphans = 0;
  std::uint64_t sessions_refused = 0;  // `grace` past --max-sessions
  std::uint64_t tokens_failed = 0;     // `session` with no randomness to be had
  std::uint64_t memory_refusals = 0;   // requests refused at --max-memory
  std::uint64_t lock_limit_refusals = 0;  // g/w/sg/sw past --max-locks-per-connection
  std::uint64_t waiter_refusals = 0;  // w/sw past --max-waiters(-per-lock)
};

struct Features {
  bool dump = true;
  bool registry = true;
};

// Protocol state of one connection.
struct Session {
  ConnId id = kNil;
  std::string addr;            // IP:PORT, [IP]:PORT or unix:N (set before attach())
  std::uint32_t grace_ms = 0;  // keep locks this long after a drop (`grace`)
  std::string certificate_name;  // --ssl-subject-name: the client certificate's CN
  bool kept = false;           // dropped, its locks kept for grace_ms (resumable)
  Holdings holdings;
};

// Where `session` tokens come from: 32 hex digits, unguessable; empty (with
// `error` set to an errno) when none can be had. The daemon passes the
// kernel's random pool (loop.cpp); tests may pass a predictable one.
using TokenSource = std::string (*)(int& error);

// Per-connection events, as the original glockd prints them under -verbose.
class Events {
 public:
  virtual ~Events() = default;
  virtual void obtained(ConnId conn, LockKind kind, std::string_view name) = 0;
  virtual void released(ConnId conn, LockKind kind, std::string_view name) = 0;
  virtual void orphaned(ConnId conn, LockKind kind, std::string_view name) = 0;
  virtual void renamed(ConnId conn, std::string_view name) = 0;
  virtual void invalid(ConnId conn, std::string_view line) = 0;
};


// A request refused by a limit or a failure of the server, not by its
// content: the loop logs these (rate limited) so an operator can tell.
enum class Refusal : std::uint8_t { None, TooManySessions, NoToken, MemoryFull, LockLimit, WaiterLimit };

// What a call into the protocol left for the loop to do, as values. Every
// one goes through Loop::apply, which also answers the waiters the call's
// releases granted (so no call site has to remember); [[nodiscard]] makes
// the compiler hold the loop to it. 16 bytes: returned in registers.
struct [[nodiscard]] Outcome {
  // A `w`/`sw` has to wait: later requests wait behind it for wait_ms.
  std::uint32_t wait_ms = 0;
  // `resume` took over the kept session of this connection: its slot can go.
  ConnId taken_over = kNil;
  std::uint16_t error = 0;  // the errno behind Refusal::NoToken
  Refusal refused = Refusal::None;
  bool blocked = false;
  // `q`: the answer needs the connection count; the loop takes pending
  // accepts and calls answer_stats().
  bool count_connections = false;
  // disconnect(): the locks are kept for the session's grace period.
  bool kept = false;
  // Not handled, no answer: an inspection while another is made past the
  // memory budget. The loop hands the same line again later.
  bool retry = false;

  // Anything for Loop::apply to do besides answering grants?
  bool needs_action() const {
    return blocked || retry || refused != Refusal::None || taken_over != kNil;
  }
};

// Turns one request line into an answer. The protocol below; the benchmark's
// echo ceiling (bench/) is another.
class LineHandler {
 public:
  virtual ~LineHandler() = default;
  // Answers one line (without its '\n'), appending the answer to `out`.
  virtual Outcome handle_line(Session& s, std::string_view line, std::string& out) = 0;
};

inline constexpr std::size_t kDefaultMaxSessions = 10000;

class Protocol final : public LineHandler {
 public:
  Protocol(LockTable& table, Registry& registry, Stats& stats, Features features,
           TokenSource tokens, Events* events = nullptr)
      : table_(table), registry_(registry), stats_(stats), features_(features),
        tokens_(tokens), events_(events) {}

  // Where per-connection events go (--verbose), or null.
  void set_events(Events* events) { events_ = events; }

  // A new connection's session (id and addr set); it stays known, under its
  // address, until forget(): while open, closing, and kept after a drop.
  void attach(Session& s);
  void forget(const Session& s);
  // --ssl-subject-name: the connection is registered as its client
  // certificate's CN, as if it had sent `iam CN` (and keeps it: see iam).
  void name_from_certificate(Session& s, std::string name);
  // The name a connection is shown under when it has not registered one.
  std::string_view addr(ConnId conn) const;

  Outcome handle_line(Session& s, std::string_view line, std::string& out) override;
  // The rest of a `q` answer (Outcome::count_connections).
  void answer_stats(std::size_t connections, std::string& out);
  // The answer for a waiter that has been given its lock (LockTable::grants()).
  void answer_grant(const Grant& g, std::string& out);
  // A blocked wait ran out of time: leave the queue, answer the failure.
  Outcome expire_wait(Session& s, std::string& out);
  // Counts a line that was too long and therefore discarded.
  void overlong_line() { ++stats_.invalid_commands; }
  // The connection is gone: orphan its locks and forget its registration.
  // Outcome::kept (and s.kept) when its locks are kept instead, for its
  // grace period; then the caller calls expire_detached() when that ends.
  Outcome disconnect(Session& s);
  // The grace period of a dropped connection ended without a resume.
  Outcome expire_detached(Session& s);

  // Sessions that may be kept after a drop (--max-sessions): a slot is
  // taken by `grace` with MS > 0, not at the drop, so a client learns at
  // once that its locks would not be kept.
  void set_max_sessions(std::size_t n) { max_sessions_ = n; }
  std::size_t sessions_reserved() const { return sessions_reserved_; }

  // docs/PROTOCOL.md's "Limits": locks one connection may hold (0: no bound), and
  // the daemon's memory budget (null: none).
  void set_limits(std::size_t max_locks_per_connection, MemoryBudget* budget) {
    max_locks_ = max_locks_per_connection;
    budget_ = budget;
  }

 private:
  void answer_now(Session& s, Command cmd, std::string_view name, std::string& out);
  // Refusal::LockLimit or MemoryFull when taking one more lock would pass
  // a bound; None otherwise (the common case, kept cheap).
  Refusal growth_refused(const Session& s) const {
    if (max_locks_ != 0 && s.holdings.total() >= max_locks_) return Refusal::LockLimit;
    if (budget_ != nullptr && budget_->full()) return Refusal::MemoryFull;
    return Refusal::None;
  }
  // The failure line of a lock request refused by a bound, unless the lock
  // is already held (then it succeeds as usual); None when not refused.
  Refusal refuse_lock(Session& s, Command cmd, std::string_view name, std::string& out);
  // `0 Bad Request: memory limit` (iam, grace, session at the budget).
  Outcome refuse_memory(std::string& out);
  Outcome resume(Session& s, std::string_view token, std::string& out);
  Outcome grace(Session& s, std::string_view ms, std::string& out);
  Outcome session(Session& s, std::string& out);
  Outcome take_over(Session& s, Session& old, std::string& out);
  void drop_reservation(Session& s);
  void orphan_all(Session& s);
  Outcome wait(Session& s, Command cmd, std::string_view args, std::string& out);
  void holder_name(ConnId conn, std::string& out) const;
  void dump_lines(LockKind kind, std::string_view only, std::string& out) const;
  void dump_map(LockKind kind, std::string& out) const;
  void who(std::string_view only, std::string& out) const;

  LockTable& table_;
  Registry& registry_;
  Stats& stats_;
  Features features_;
  TokenSource tokens_;
  Events* events_;
  std::vector<Session*> sessions_;  // by ConnId: attached and not yet forgotten
  // Session tokens handed out by `session`, both ways.
  std::unordered_map<std::string, ConnId> token_conn_;
  std::unordered_map<ConnId, std::string> conn_token_;
  std::size_t max_sessions_ = kDefaultMaxSessions;
  std::size_t sessions_reserved_ = 0;  // sessions with grace > 0, open or kept
  std::size_t max_locks_ = 0;
  MemoryBudget* budget_ = nullptr;
};

// Splits a trimmed request into command and normalised argument (runs of
// whitespace collapsed to one space). Exposed for tests.
struct Request {
  std::string_view command;
  std::string_view argument;  // points into `scratch` or the line itself
};
Request parse_request(std::string_view line, std::string& scratch);

}  // namespace glockd
